import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bankOfTags, ImageLibrary, ImageSearch, packEncoding, unpackEncoding, type LibrarySettings } from '../../src/library/index.ts';
import { TemplateGenerator } from '../../src/vocab/index.ts';
import type { VocabularySnapshot } from '../../src/vocab/index.ts';
import { setupVocabEnv, silentLog, type VocabTestEnv } from '../vocab/helpers.ts';
import { noisePng } from './helpers.ts';

const settings: LibrarySettings = { encoding: 'float32', thumbnail: { maxEdge: 32, format: 'webp' }, scoreFloor: 0, searchBatch: 4 };

describe('image library storage', () => {
  let env: VocabTestEnv;
  beforeAll(async () => {
    env = await setupVocabEnv();
  }, 120_000);
  afterAll(() => env?.close());

  /** Scores bytes (or the ticket's stored encoding) against a snapshot and keeps the image, as tagging does. */
  async function storeOne(lib: ImageLibrary, tenantId: string, snap: VocabularySnapshot, bytes: Uint8Array, externalId: string | null = null) {
    const ticket = await lib.prepare(tenantId, bytes, externalId);
    const [scored] = await env.engine.scoreImages([ticket.embeddings ?? bytes], [snap.bank!]);
    const kept = await lib.keep(tenantId, ticket, {
      bytes,
      source: scored!.source ?? ticket.existing,
      embeddings: scored!.embeddings,
      vocabularyId: snap.vocabularyId,
      revision: snap.revision,
      scores: scored!.scores[0]!,
      tagIdAt: (i) => snap.tags.at(i)!.id,
    });
    return { ...kept, scores: scored!.scores[0]!, reused: !!ticket.embeddings };
  }

  it('stores, reuses duplicates, ranks, and deletes leaving no rows; other tenants see nothing', async () => {
    const s = await env.services();
    const lib = new ImageLibrary({ prisma: env.db.prisma, engine: env.engine, settings, log: silentLog });
    const v = await s.vocabularies.create(env.tenantA, { name: 'library store' });
    await s.tags.add(env.tenantA, v.id, [{ name: 'cat' }, { name: 'dog' }, { name: 'boat' }]);
    const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);

    const images = await Promise.all([1, 2, 3, 4].map((i) => noisePng(i)));
    const stored = [];
    for (const [i, bytes] of images.entries()) stored.push(await storeOne(lib, env.tenantA, snap, bytes, `img-${i}`));
    expect(stored.every((x) => x.created && !x.reused)).toBe(true);
    const row = await lib.image(env.tenantA, stored[0]!.image.id);
    expect(row).toMatchObject({ externalId: 'img-0', format: 'png', width: 48, height: 40, encodingDtype: 'float32', byteSize: images[0]!.byteLength });
    expect(await lib.thumbnailUrl(env.tenantA, row.id)).toMatch(/^data:image\/webp;base64,/);

    // a duplicate reuses the stored encoding: the encoder does not run
    const before = env.engine.stats().runs.imageEncoder;
    const dup = await storeOne(lib, env.tenantA, snap, images[1]!, 'img-1');
    expect(dup).toMatchObject({ created: false, reused: true });
    expect(dup.image.id).toBe(stored[1]!.image.id);
    expect(env.engine.stats().runs.imageEncoder).toBe(before);
    // same name, other bytes: a typed conflict
    await expect(lib.prepare(env.tenantA, await noisePng(99), 'img-0')).rejects.toMatchObject({ code: 'CONFLICT', details: { field: 'externalId' } });

    // stored scores equal the engine's
    const cat = snap.tags.at(0)!;
    const catScores = await lib.scores(env.tenantA, stored[0]!.image.id, v.id);
    expect(catScores.find((x) => x.tagId === cat.id)!.score).toBe(stored[0]!.scores.probabilities[0]);

    // ranked by a tag, best first, paged with a stable cursor
    const expected = stored.map((x) => ({ id: x.image.id, p: x.scores.probabilities[0]! })).sort((a, b) => b.p - a.p || (a.id < b.id ? -1 : 1));
    const first = await lib.list(env.tenantA, v.id, { tag: 'CAT' }, { first: 3 });
    expect(first.totalCount).toBe(4);
    expect(first.hasNextPage).toBe(true);
    const second = await lib.list(env.tenantA, v.id, { tag: cat.id }, { first: 3, after: first.cursorOf(first.nodes.at(-1)!) });
    expect([...first.nodes, ...second.nodes].map((n) => n.id)).toEqual(expected.map((e) => e.id));
    expect(second.hasNextPage).toBe(false);
    const newest = await lib.list(env.tenantA, v.id, {}, { first: 10 });
    expect(newest.nodes.map((n) => n.id)).toEqual(stored.map((x) => x.image.id).reverse());

    // another tenant: nothing
    await expect(lib.image(env.tenantB, row.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(lib.list(env.tenantB, v.id, {}, { first: 10 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await lib.delete(env.tenantB, [row.id])).toEqual([{ id: row.id, deleted: false }]);

    // deletion leaves no rows
    expect(await lib.delete(env.tenantA, [row.id, 'nope'])).toEqual([
      { id: row.id, deleted: true },
      { id: 'nope', deleted: false },
    ]);
    expect(await lib.deleteByExternalId(env.tenantA, ['img-1', 'img-404'])).toEqual([
      { id: 'img-1', deleted: true },
      { id: 'img-404', deleted: false },
    ]);
    const p = env.db.prisma;
    const gone = [row.id, stored[1]!.image.id];
    expect(await p.libraryImage.count({ where: { id: { in: gone } } })).toBe(0);
    expect(await p.imageResult.count({ where: { imageId: { in: gone } } })).toBe(0);
    expect(await p.imageTagScore.count({ where: { imageId: { in: gone } } })).toBe(0);

    // deleting the vocabulary removes its results; the images stay
    await s.vocabularies.delete(env.tenantA, v.id);
    expect(await p.imageResult.count({ where: { tenantId: env.tenantA } })).toBe(0);
    expect(await p.imageTagScore.count({ where: { tenantId: env.tenantA } })).toBe(0);
    expect(await lib.count(env.tenantA)).toBe(2);
  });

  it('re-scores a stored float32 encoding exactly as the fresh scoring; float16 storage drifts by a small measured amount', async () => {
    const s = await env.services();
    const v = await s.vocabularies.create(env.tenantA, { name: 'parity' });
    await s.tags.add(env.tenantA, v.id, ['cat', 'dog', 'boat', 'tree', 'car', 'sky'].map((name) => ({ name })));
    const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    const info = env.engine.info;
    let drift16 = 0;
    for (let i = 0; i < 6; i++) {
      const [fresh] = await env.engine.scoreImages([await noisePng(200 + i)], [snap.bank!]);
      const logits = fresh!.scores[0]!.logits;
      for (const dtype of ['float32', 'float16'] as const) {
        const back = unpackEncoding(packEncoding(fresh!.embeddings, dtype, info.imageEncoderId), info);
        const [again] = await env.engine.scoreImages([back], [snap.bank!]);
        const d = Math.max(...Array.from(again!.scores[0]!.logits, (l, k) => Math.abs(l - logits[k]!)));
        if (dtype === 'float32') expect(d).toBeLessThanOrEqual(1e-6);
        else drift16 = Math.max(drift16, d);
      }
    }
    // the tiny pack's random weights; docs/library.md states the measured drift of both packs
    expect(drift16).toBeGreaterThan(0);
    expect(drift16).toBeLessThan(0.05);
  });

  it('never scores an encoding made by another image encoder: search skips it, storing its bytes again re-encodes it', async () => {
    const s = await env.services();
    const lib = new ImageLibrary({ prisma: env.db.prisma, engine: env.engine, settings, log: silentLog });
    const v = await s.vocabularies.create(env.tenantB, { name: 'pack change' });
    await s.tags.add(env.tenantB, v.id, [{ name: 'lamp' }]);
    const snap = await s.labelBanks.forVocabulary(env.tenantB, v.id);
    const bytes = await noisePng(300);
    const { image } = await storeOne(lib, env.tenantB, snap, bytes);
    // as if the model pack had changed since
    await env.db.prisma.libraryImage.update({ where: { id: image.id }, data: { encoderId: 'another-pack-encoder' } });
    await expect(lib.embeddings(env.tenantB, image.id)).rejects.toMatchObject({ code: 'ENCODER_CHANGED', details: { imageId: image.id } });
    const search = new ImageSearch({
      library: lib,
      engine: env.engine,
      generator: new TemplateGenerator(),
      embed: (texts) => s.embeddings.embed(texts),
      snapshot: (t, id) => s.labelBanks.forVocabulary(t, id),
      descriptionsPerTag: 8,
      defaultThreshold: 0.5,
    });
    expect(await search.search(env.tenantB, { text: 'lamp' })).toMatchObject({ scanned: 0, skipped: 1, hits: [] });
    const runs = env.engine.stats().runs.imageEncoder;
    const again = await storeOne(lib, env.tenantB, snap, bytes);
    expect(again).toMatchObject({ created: false, reused: false });
    expect(env.engine.stats().runs.imageEncoder).toBe(runs + 1);
    expect((await lib.image(env.tenantB, image.id)).encoderId).toBe(env.engine.info.imageEncoderId);
    expect(await search.search(env.tenantB, { text: 'lamp', vocabularyId: v.id })).toMatchObject({ scanned: 1, skipped: 0, threshold: 0.5 });
  });

  it('re-scores stored images for the tags an edit added, from their encodings, equal to a fresh scoring of the new revision', async () => {
    const s = await env.services();
    const lib = new ImageLibrary({ prisma: env.db.prisma, engine: env.engine, settings, log: silentLog });
    const v = await s.vocabularies.create(env.tenantA, { name: 'retag' });
    await s.tags.add(env.tenantA, v.id, [{ name: 'cat' }, { name: 'dog' }]);
    const before = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    const images = await Promise.all([401, 402, 403].map((i) => noisePng(i)));
    const ids: string[] = [];
    for (const bytes of images) ids.push((await storeOne(lib, env.tenantA, before, bytes)).image.id);

    await s.tags.add(env.tenantA, v.id, [{ name: 'boat' }]);
    const after = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    const boat = [...after.tags].findIndex((t) => t.name === 'boat');
    const boatId = after.tags.at(boat)!.id;
    const runs = env.engine.stats().runs.imageEncoder;
    const outcomes = await lib.rescore(env.tenantA, [...ids, '00000000-0000-4000-8000-000000000000'], {
      vocabularyId: v.id,
      revision: after.revision,
      bank: bankOfTags(after.bank!, [boat], `test:${after.revision}:boat`),
      tagIdAt: () => boatId,
      onlyTags: [boatId],
    });
    expect(outcomes.map((o) => [o.written, o.error])).toEqual([[true, null], [true, null], [true, null], [false, 'NOT_FOUND']]);
    expect(env.engine.stats().runs.imageEncoder).toBe(runs);

    for (const [k, bytes] of images.entries()) {
      const [fresh] = await env.engine.scoreImages([bytes], [after.bank!]);
      const stored = await lib.scores(env.tenantA, ids[k]!, v.id);
      expect(stored).toHaveLength(3);
      for (const row of stored) {
        const i = [...after.tags].findIndex((t) => t.id === row.tagId);
        expect(Math.abs(row.logit - fresh!.scores[0]!.logits[i]!)).toBeLessThanOrEqual(1e-6);
        expect(row.revision).toBe(row.tagId === boatId ? after.revision : before.revision);
      }
      expect((await lib.results(env.tenantA, ids[k]!))[0]).toMatchObject({ revision: after.revision, currentRevision: after.revision });
    }
    // an older revision never overwrites a newer one (the bank of the old revision was freed: the guard is what is tested)
    const late = await lib.rescore(env.tenantA, [ids[0]!], { vocabularyId: v.id, revision: before.revision, bank: after.bank!, tagIdAt: (i) => after.tags.at(i)!.id });
    expect(late).toEqual([{ imageId: ids[0], written: false, error: null }]);
    // removing a tag removes its stored scores
    await s.tags.remove(env.tenantA, [boatId]);
    expect(await env.db.prisma.imageTagScore.count({ where: { tagId: boatId } })).toBe(0);
    expect(await lib.scores(env.tenantA, ids[0]!, v.id)).toHaveLength(2);
  });

  it('goes with its tenant: deleting a tenant deletes its images, results and scores', async () => {
    const s = await env.services();
    const lib = new ImageLibrary({ prisma: env.db.prisma, engine: env.engine, settings, log: silentLog });
    const p = env.db.prisma;
    const tenant = await p.tenant.create({ data: { name: 'Leaving', slug: `leaving-${Date.now()}` } });
    const v = await s.vocabularies.create(tenant.id, { name: 'v' });
    await s.tags.add(tenant.id, v.id, [{ name: 'cat' }]);
    const snap = await s.labelBanks.forVocabulary(tenant.id, v.id);
    await storeOne(lib, tenant.id, snap, await noisePng(800));
    expect(await p.imageTagScore.count({ where: { tenantId: tenant.id } })).toBe(1);
    await p.tenant.delete({ where: { id: tenant.id } });
    expect(await p.libraryImage.count({ where: { tenantId: tenant.id } })).toBe(0);
    expect(await p.imageResult.count({ where: { tenantId: tenant.id } })).toBe(0);
    expect(await p.imageTagScore.count({ where: { tenantId: tenant.id } })).toBe(0);
  });
});
