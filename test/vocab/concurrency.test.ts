import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tagEmbeddings } from '../../src/inference/index.ts';
import type { VocabularyServices, VocabularySnapshot } from '../../src/vocab/index.ts';
import { databaseMode, setupVocabEnv, type VocabTestEnv } from './helpers.ts';

// PGlite is a single session: transactions from several connections are not isolated there,
// so what this file checks can only be checked on a real PostgreSQL server.
const onPostgres = databaseMode === 'postgresql';
if (!onPostgres) console.warn('test/vocab/concurrency.test.ts skipped: it needs a real PostgreSQL (set OMNITAG_TEST_PG_SERVER)');

describe.skipIf(!onPostgres)('concurrent edits and compiles (PostgreSQL)', () => {
  let env: VocabTestEnv;
  beforeAll(async () => {
    env = await setupVocabEnv();
  });
  afterAll(() => env?.close());

  it('loses no edit and never mixes two revisions in one bank', async () => {
    // every "replica" has its own database client and caches
    const replica = () => env.services({ vocab: { descriptionsPerTag: 2 } }, env.openClient());
    const admin = await replica();
    const v = await admin.vocabularies.create(env.tenantA, { name: 'busy' });
    const base = await admin.tags.add(env.tenantA, v.id, [{ name: 'toggle a', threshold: 0.3 }, { name: 'toggle b', threshold: 0.7 }]);
    const toggles = base.results.map((r) => r.tag!.id);
    const r0 = base.revision;

    const writers = 3;
    const rounds = 8;
    let edits = 0;
    const added = new Set<string>();
    const removed = new Set<string>();
    let running = true;

    const writer = async (w: number) => {
      const s = await replica();
      const mine: string[][] = [];
      for (let i = 0; i < rounds; i++) {
        // a pair, in one call: both tags or neither in any revision
        const r = await s.tags.add(env.tenantA, v.id, [
          { name: `w${w} r${i} a`, threshold: 0.3 },
          { name: `w${w} r${i} b`, threshold: 0.7 },
        ]);
        expect(r.results.every((x) => x.ok)).toBe(true);
        const ids = r.results.map((x) => x.tag!.id);
        ids.forEach((id) => added.add(id));
        mine.push(ids);
        edits++;
        if (i % 3 === 2) {
          const gone = mine.shift()!;
          const res = await s.tags.remove(env.tenantA, gone);
          expect(res.every((x) => x.ok)).toBe(true);
          gone.forEach((id) => removed.add(id));
          edits++;
        }
      }
    };
    const toggler = async () => {
      const s = await replica();
      for (let i = 0; i < rounds; i++) {
        for (const id of toggles) {
          await s.tags.update(env.tenantA, id, { enabled: i % 2 === 1 });
          edits++;
        }
      }
    };
    const seen: VocabularySnapshot[] = [];
    const readerServices: VocabularyServices[] = [];
    const readerRevisions: number[][] = [];
    const reader = async () => {
      const s = await replica();
      readerServices.push(s);
      const mine: number[] = [];
      readerRevisions.push(mine);
      while (running) {
        const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);
        seen.push(snap);
        mine.push(snap.revision);
      }
    };

    const readers = [reader(), reader()];
    await Promise.all([...Array.from({ length: writers }, (_, w) => writer(w)), toggler()]);
    running = false;
    await Promise.all(readers);

    // no lost edit: every call made exactly one revision, and the tags are what they did
    const final = await admin.vocabularies.get(env.tenantA, v.id);
    expect(final.revision).toBe(r0 + edits);
    const stored = await env.db.prisma.tag.findMany({ where: { vocabularyId: v.id }, select: { id: true } });
    const expected = new Set([...toggles, ...[...added].filter((id) => !removed.has(id))]);
    expect(new Set(stored.map((t) => t.id))).toEqual(expected);

    // no mixed revision: in every bank both halves of a pair added in one call are present or
    // absent together, and each row's threshold is its own tag's (rows and tags aligned)
    expect(seen.length).toBeGreaterThan(5);
    for (const snap of seen) {
      const names = new Set([...snap.tags].map((t) => t.name));
      for (const name of names) {
        if (name.startsWith('toggle ')) continue; // toggled one at a time
        const other = name.endsWith(' a') ? `${name.slice(0, -2)} b` : `${name.slice(0, -2)} a`;
        expect(names.has(other)).toBe(true);
      }
      [...snap.tags].forEach((t, i) => expect(snap.bank!.thresholds[i]).toBeCloseTo(t.name.endsWith(' a') ? 0.3 : 0.7, 6));
      expect(snap.bank!.tagCount).toBe(snap.tags.length);
    }
    // revisions only move forward for each reader, and equal revisions compile equally
    for (const revisions of readerRevisions) expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    const byRevision = new Map<number, string>();
    for (const snap of seen) {
      const ids = [...snap.tags].map((t) => t.id).sort().join(',');
      if (byRevision.has(snap.revision)) expect(byRevision.get(snap.revision)).toBe(ids);
      byRevision.set(snap.revision, ids);
    }

    // each reader's lineage of incremental compiles, brought to the final revision, equals a
    // fresh full compile of that revision
    const fresh = await (await replica()).labelBanks.forVocabulary(env.tenantA, v.id);
    expect(fresh.revision).toBe(final.revision);
    for (const s of readerServices) {
      const lineage = await s.labelBanks.forVocabulary(env.tenantA, v.id);
      expect(lineage.revision).toBe(final.revision);
      expect(rowsById(lineage)).toEqual(rowsById(fresh));
    }
  });
});

/** Per tag id: its threshold and embedding rows, independent of row order. */
function rowsById(snap: VocabularySnapshot) {
  const bank = snap.bank!;
  const out: Record<string, { threshold: number; count: number; rows: number[] }> = {};
  [...snap.tags].forEach((t, c) => {
    const rows = tagEmbeddings(bank, c);
    out[t.id] = { threshold: bank.thresholds[c]!, count: rows.length / bank.embedDim, rows: Array.from(rows).map((x) => Math.round(x * 1e5)) };
  });
  return out;
}

