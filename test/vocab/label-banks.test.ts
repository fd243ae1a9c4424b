import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InferenceEngine } from '../../src/inference/runtime/engine.ts';
import { descriptionCount, tagEmbeddings } from '../../src/inference/index.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import type { VocabularyServices } from '../../src/vocab/index.ts';
import { templateDescriptions } from '../../src/vocab/generation/templates.ts';
import { descriptionsOf, randomPixels, setupVocabEnv, tagNamed, testConfig, type VocabTestEnv } from './helpers.ts';

let env: VocabTestEnv;
let s: VocabularyServices;

beforeAll(async () => {
  env = await setupVocabEnv();
  s = await env.services({ vocab: { descriptionsPerTag: 8 } });
});
afterAll(() => env?.close());

const pixels = (seed: number) => randomPixels(env.engine.info.imageSize, seed);

describe('label banks', () => {
  it('compiles a revision: enabled tags only, their thresholds, one row per description', async () => {
    const v = await s.vocabularies.create(env.tenantA, { name: 'compile' });
    const empty = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(empty).toMatchObject({ revision: 1, bank: null });
    expect(empty.tags.length).toBe(0);

    const { results } = await s.tags.add(env.tenantA, v.id, [
      { name: 'kite', threshold: 0.61, names: [{ language: 'de', name: 'Drachen' }] },
      { name: 'balloon', descriptions: ['a round rubber balloon.', 'a balloon on a string.'] },
      { name: 'cloud' },
    ]);
    await s.tags.update(env.tenantA, results[2]!.tag!.id, { enabled: false });
    const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(snap.revision).toBe(3);
    // bank order: built-in tags by their pack row, then by creation, names within one request
    expect([...snap.tags].map((t) => t.name)).toEqual(['balloon', 'kite']);
    const bank = snap.bank!;
    expect(bank).toMatchObject({ tagCount: 2, embedDim: env.engine.info.embedDim });
    expect(Array.from(bank.thresholds)).toEqual([0.5, Math.fround(0.61)]);
    // one own segment (no built-in tag), D = the longest description list
    expect(bank.segments).toHaveLength(1);
    expect(bank.segments[0]).toMatchObject({ tagCount: 2, maxDescriptions: 8, precision: 'float32' });
    expect([descriptionCount(bank, 0), descriptionCount(bank, 1)]).toEqual([2, 8]);
    expect(snap.tags.at(1)!).toMatchObject({ names: { de: 'Drachen' }, descriptionSource: 'TEMPLATE', usedFallback: false, status: 'READY' });
    expect(snap.tags.at(0)!.descriptions).toEqual([
      { source: 'MANUAL', text: 'a round rubber balloon.' },
      { source: 'MANUAL', text: 'a balloon on a string.' },
    ]);
    expect(snap.tags.at(0)!.descriptionSource).toBe('MANUAL');
    // the rows are the text encoder's embeddings of the descriptions
    const E = bank.embedDim;
    const direct = await env.engine.embedTexts(templateDescriptions('kite', 8));
    const kite = tagEmbeddings(bank, 1);
    for (let i = 0; i < 8 * E; i++) expect(kite[i]).toBeCloseTo(direct.embeddings[i]!, 5);

    // the engine scores images against it
    const scored = await env.engine.scoreImages([pixels(1)], [bank]);
    expect(scored[0]!.scores[0]!.probabilities).toHaveLength(2);

    // the same revision is served from the cache; a new revision is a new snapshot
    const again = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(again).toBe(snap);
    await s.tags.update(env.tenantA, results[0]!.tag!.id, { threshold: 0.9 });
    const next = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(next.revision).toBe(4);
    expect(next.bank!.thresholds[1]).toBeCloseTo(0.9, 6);
    expect(snap.bank!.thresholds[1]).toBeCloseTo(0.61, 6); // snapshots never change
  });

  it('recompiles incrementally: one new tag costs one tag and its embeddings', async () => {
    const v = await s.vocabularies.create(env.tenantA, { name: 'incremental', fromBuiltin: true });
    const builtin = await env.engine.builtinVocabulary();
    const first = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(first.bank!.tagCount).toBe(4585);

    const before = { banks: s.labelBanks.stats(), cache: s.embeddings.stats() };
    const texts = Array.from({ length: 51 }, (_, i) => `an unusual gadget seen from angle ${i}.`);
    const added = await s.tags.add(env.tenantA, v.id, [{ name: 'unusual gadget', descriptions: texts }]);
    const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    const after = { banks: s.labelBanks.stats(), cache: s.embeddings.stats() };
    expect(snap.bank).toMatchObject({ tagCount: 4586 });
    // the pack's segment, shared, and one own segment holding only the new tag
    expect(snap.bank!.segments[0]).toBe(builtin.segment);
    expect(snap.bank!.segments.slice(1).map((x) => [x.tagCount, x.maxDescriptions])).toEqual([[1, 51]]);
    expect(after.banks.segmentsBuilt - before.banks.segmentsBuilt).toBe(1);
    expect(after.banks.tagsRebuilt - before.banks.tagsRebuilt).toBe(1);
    expect(after.banks.incremental - before.banks.incremental).toBe(1);
    expect(after.cache.computed - before.cache.computed).toBe(51);
    const row = [...snap.tags].findIndex((t) => t.id === added.results[0]!.tag!.id);
    expect(row).toBe(4585); // new tags after the built-in ones
    // built-in rows are still the pack's
    const i = 100;
    const c = [...snap.tags].findIndex((t) => t.name === builtin.tags[i]!.name);
    expect([snap.bank!.segmentOf[c], snap.bank!.rowOf[c]]).toEqual([0, i]);

    // a revision that changes no tag (a rename of the vocabulary) rebuilds nothing and embeds nothing
    await s.vocabularies.rename(env.tenantA, v.id, 'incremental, renamed');
    const touched = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(touched.revision).toBe(snap.revision + 1);
    expect(s.labelBanks.stats().tagsRebuilt).toBe(after.banks.tagsRebuilt);
    expect(s.embeddings.stats().computed).toBe(after.cache.computed);
  });

  it('shares embeddings across tenants through the content-addressed cache, without sharing anything else', async () => {
    const texts = templateDescriptions('okapi', 8);
    const va = await s.vocabularies.create(env.tenantA, { name: 'shared A' });
    await s.tags.add(env.tenantA, va.id, [{ name: 'okapi' }]);
    const beforeA = s.embeddings.stats().computed;
    await s.labelBanks.forVocabulary(env.tenantA, va.id);
    expect(s.embeddings.stats().computed - beforeA).toBe(8);
    await s.embeddings.flush(); // new vectors are written behind the caller's back

    // tenant B on another replica (its own in-memory caches)
    const replica = await env.services({ vocab: { descriptionsPerTag: 8 } });
    const vb = await replica.vocabularies.create(env.tenantB, { name: 'shared B' });
    await replica.tags.add(env.tenantB, vb.id, [{ name: 'okapi' }, { name: 'tapir' }]);
    const snapB = await replica.labelBanks.forVocabulary(env.tenantB, vb.id);
    const stats = replica.embeddings.stats();
    expect(stats.databaseHits).toBe(8); // okapi's texts: from the shared table
    expect(stats.computed).toBe(8); // tapir's: new
    expect([...snapB.tags].map((t) => t.name).sort()).toEqual(['okapi', 'tapir']);

    // one row per (encoder, text) whoever asked; the table holds hashes and vectors, never text
    const rows = await env.db.pool.query('SELECT count(*)::int AS n FROM text_embeddings WHERE text_hash = ANY($1)', [texts.map(sha256Hex)]);
    expect(rows.rows[0].n).toBe(8);
    const columns = await env.db.pool.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'text_embeddings' ORDER BY 1`);
    expect(columns.rows.map((r) => r.column_name)).toEqual(['created_at', 'dim', 'encoder_id', 'text_hash', 'vector']);

    // neither tenant can reach the other's vocabulary, tags or descriptions
    const tagA = (await tagNamed(s, env.tenantA, va.id, 'okapi'))!;
    await expect(replica.labelBanks.forVocabulary(env.tenantB, va.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await descriptionsOf(replica, env.tenantB, tagA.id)).toEqual([]);
    expect((await replica.descriptions.listForTags(env.tenantB, [tagA.id])).size).toBe(0);
    expect((await replica.tags.getMany(env.tenantB, [tagA.id])).size).toBe(0);
  });

  it('never serves vectors of another text encoder', async () => {
    const real = env.engine;
    const otherId = 'another-text-encoder';
    // the same engine behind another text encoder id, whose vectors differ
    const other = new Proxy(real, {
      get(target, prop) {
        if (prop === 'info') return { ...target.info, textEncoderId: otherId };
        if (prop === 'embedTexts') {
          return async (texts: readonly string[], o?: object) => {
            const r = await target.embedTexts(texts, o);
            return { ...r, textEncoderId: otherId, embeddings: r.embeddings.map((x) => -x) };
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as InferenceEngine;
    const v = await s.vocabularies.create(env.tenantA, { name: 'encoders' });
    await s.tags.add(env.tenantA, v.id, [{ name: 'quokka' }]);
    const mine = await s.labelBanks.forVocabulary(env.tenantA, v.id);

    const { createVocabularyServices } = await import('../../src/vocab/index.ts');
    const { silentLog } = await import('./helpers.ts');
    const switched = createVocabularyServices({ prisma: env.db.prisma, pool: env.db.pool, engine: other, log: silentLog, config: testConfig({ vocab: { descriptionsPerTag: 8 } }) });
    const theirs = await switched.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(switched.embeddings.stats()).toMatchObject({ computed: 8, databaseHits: 0 });
    expect(tagEmbeddings(theirs.bank!, 0)[0]).toBeCloseTo(-tagEmbeddings(mine.bank!, 0)[0]!, 6);
    expect(theirs.bank!.key).not.toBe(mine.bank!.key);
  });

  it('keeps compiled banks under the memory budget', async () => {
    const budget = 400_000;
    const small = await env.services({ vocab: { descriptionsPerTag: 8 }, cache: { embeddingBytes: 8 << 20 }, labelBanks: { cacheBytes: budget } });
    const ids: string[] = [];
    for (let k = 0; k < 6; k++) {
      const v = await small.vocabularies.create(env.tenantB, { name: `budget ${k}` });
      await small.tags.add(env.tenantB, v.id, Array.from({ length: 40 }, (_, i) => ({ name: `budget tag ${i}` })));
      ids.push(v.id);
    }
    for (const id of ids) {
      const snap = await small.labelBanks.forVocabulary(env.tenantB, id);
      expect(snap.bank!.tagCount).toBe(40);
      const st = small.labelBanks.stats();
      expect(st.bytes).toBeLessThanOrEqual(budget);
    }
    const st = small.labelBanks.stats();
    expect(st.entries).toBeLessThan(6);
    expect(st.entries).toBeGreaterThan(0);
    // an evicted vocabulary compiles again (all its embeddings come from the embedding cache)
    const computed = small.embeddings.stats().computed;
    await small.labelBanks.forVocabulary(env.tenantB, ids[0]!);
    expect(small.embeddings.stats().computed).toBe(computed);

    // a vocabulary larger than the whole budget is served but not kept
    const tiny = await env.services({ cache: { embeddingBytes: 8 << 20 }, labelBanks: { cacheBytes: 1000 } });
    const snap = await tiny.labelBanks.forVocabulary(env.tenantB, ids[1]!);
    expect(snap.bank!.tagCount).toBe(40);
    expect(tiny.labelBanks.stats()).toMatchObject({ entries: 0, oversize: 1 });
  });
});
