/**
 * Segmented label banks: a vocabulary seeded from the built-in tags points into the pack's one
 * built-in segment and owns only segments of its own tags; its scores equal those of one
 * monolithic bank of the same rows, and an edit rebuilds only the segment of the tag it touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLabelBank, descriptionWeights, isEvictedBankError, segmentBytes, type BuiltinVocabulary, type LabelBank, type LabelBankTag, type TagScores } from '../../src/inference/index.ts';
import type { VocabularyServices, VocabularySnapshot } from '../../src/vocab/index.ts';
import { databaseMode, randomPixels, setupVocabEnv, tagNamed, type VocabTestEnv } from './helpers.ts';

let env: VocabTestEnv;
let s: VocabularyServices;
let builtin: BuiltinVocabulary;
let vocabularyId: string;
const SEGMENT_TAGS = 4;

const pixels = (seed: number) => randomPixels(env.engine.info.imageSize, seed);

const ownTags = [
  { name: 'reach forklift', descriptions: ['a yellow forklift in a warehouse.', 'a forklift lifting a pallet.', 'the forks of a forklift.'] },
  { name: 'pallet jack', descriptions: ['a hand pallet jack.'] },
  { name: 'hard hat', descriptions: ['a worker wearing a hard hat.', 'a white safety helmet.'] },
  { name: 'loading dock door', descriptions: ['a loading dock with a truck.', 'the doors of a loading dock.', 'a dock leveller.', 'a busy loading bay.'] },
  { name: 'conveyor belt', descriptions: ['boxes on a conveyor belt.'] },
  { name: 'shrink wrap', descriptions: ['a pallet in shrink wrap.', 'plastic film around boxes.'] },
  { name: 'barcode scanner', descriptions: ['a handheld barcode scanner.'] },
  { name: 'orange safety vest', threshold: 0.42, descriptions: ['a high-visibility safety vest.', 'a worker in an orange vest.'] },
  { name: 'steel mezzanine', descriptions: ['a steel mezzanine floor.'] },
];

/**
 * The same vocabulary as one bank built from scratch: each tag's rows taken from the pack
 * (built-in tags) or embedded now from its stored texts, thresholds from the tag listing.
 */
async function monolithicBank(snap: VocabularySnapshot): Promise<LabelBank> {
  const E = env.engine.info.embedDim;
  const views = new Map((await s.tags.list(env.tenantA, vocabularyId, { first: 10_000 })).nodes.map((t) => [t.id, t]));
  const described = await s.descriptions.listForTags(
    env.tenantA,
    [...views.values()].filter((t) => !t.usesBuiltinDescriptions).map((t) => t.id),
  );
  const tags: LabelBankTag[] = [];
  for (const t of snap.tags) {
    const view = views.get(t.id)!;
    const stored = (described.get(t.id) ?? []).filter((d) => d.source !== 'BUILTIN').map((d) => d.text!);
    const parts: Float32Array[] = [];
    if (view.usesBuiltinDescriptions) {
      const D = builtin.segment.maxDescriptions;
      const n = builtin.tags[view.builtinIndex!]!.descriptionCount;
      const rows = builtin.segment.embeds as Float32Array;
      parts.push(rows.slice(view.builtinIndex! * D * E, (view.builtinIndex! * D + n) * E));
    }
    if (stored.length) parts.push((await env.engine.embedTexts(stored)).embeddings);
    const descriptions = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (descriptions.set(p, at), at + p.length), 0);
    tags.push({ descriptions, threshold: view.threshold });
  }
  return buildLabelBank({ key: `monolithic:${snap.revision}`, embedDim: E, tags });
}

async function expectSameScores(snap: VocabularySnapshot, tolerance = 1e-6) {
  const mono = await monolithicBank(snap);
  const scored = await env.engine.scoreImages([pixels(1), pixels(2)], [snap.bank!, mono], { explain: true });
  let worst = 0;
  for (const image of scored) {
    const [seg, one] = image.scores as [TagScores, TagScores];
    expect(seg.tagCount).toBe(one.tagCount);
    for (let c = 0; c < seg.tagCount; c++) worst = Math.max(worst, Math.abs(seg.logits[c]! - one.logits[c]!));
    expect(Array.from(seg.thresholds)).toEqual(Array.from(one.thresholds));
    if (tolerance <= 1e-6) expect(Array.from(seg.passed)).toEqual(Array.from(one.passed));
    for (const c of [0, seg.tagCount - 1, [...snap.tags].findIndex((t) => t.name === 'reach forklift')]) {
      const a = descriptionWeights(seg, c);
      const b = descriptionWeights(one, c);
      expect(a.length).toBe(b.length);
      a.forEach((w, d) => expect(Math.abs(w - b[d]!)).toBeLessThanOrEqual(tolerance));
    }
  }
  expect(worst).toBeLessThanOrEqual(tolerance);
  return worst;
}

const ownSegmentsOf = (snap: VocabularySnapshot) => snap.bank!.segments.filter((x) => x !== builtin.segment);
const segmentOfTag = (snap: VocabularySnapshot, name: string) => snap.bank!.segments[snap.bank!.segmentOf[[...snap.tags].findIndex((t) => t.name === name)]!]!;

beforeAll(async () => {
  env = await setupVocabEnv();
  s = await env.services({ labelBanks: { segmentTags: SEGMENT_TAGS } });
  builtin = await env.engine.builtinVocabulary();
  const v = await s.vocabularies.create(env.tenantA, { name: 'warehouse', fromBuiltin: true });
  vocabularyId = v.id;
  const byIndex = async (i: number) => (await tagNamed(s, env.tenantA, vocabularyId, builtin.tags[i]!.name))!.id;
  for (const i of [3, 10, 4584]) await s.tags.update(env.tenantA, await byIndex(i), { enabled: false });
  await s.tags.update(env.tenantA, await byIndex(5), { threshold: 0.33 });
  await s.tags.update(env.tenantA, await byIndex(20), { threshold: 0.9 });
  // a built-in tag described anew: its rows leave the shared segment for an own one
  await s.descriptions.replace(env.tenantA, await byIndex(7), ['a tag described by hand.', 'another look at it.']);
  const added = await s.tags.add(env.tenantA, vocabularyId, ownTags);
  expect(added.results.every((r) => r.ok)).toBe(true);
}, 120_000);
afterAll(() => env?.close());

describe(`segmented label banks (${databaseMode} database)`, () => {
  it('points into the pack’s built-in segment and owns only its own tags’ rows', async () => {
    const snap = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    const bank = snap.bank!;
    expect(bank.tagCount).toBe(4585 - 3 + ownTags.length);
    expect([...snap.tags].some((t) => t.name === builtin.tags[3]!.name)).toBe(false);

    // the built-in rows are the pack's own buffers: never copied
    expect(bank.segments[0]).toBe(builtin.segment);
    expect(bank.segments[0]!.embeds.buffer).toBe(builtin.segment.embeds.buffer);
    expect(bank.segments[0]!.mask.buffer).toBe(builtin.segment.mask.buffer);
    const own = ownSegmentsOf(snap);
    for (const x of own) {
      expect(x.embeds.buffer).not.toBe(builtin.segment.embeds.buffer);
      expect(x.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(x.tagCount).toBeLessThanOrEqual(SEGMENT_TAGS);
    }
    // own rows: the 9 added tags and the re-described built-in one, nothing else
    expect(own.reduce((n, x) => n + x.tagCount, 0)).toBe(ownTags.length + 1);
    expect(own).toHaveLength(Math.ceil((ownTags.length + 1) / SEGMENT_TAGS));
    const redescribed = [...snap.tags].findIndex((t) => t.name === builtin.tags[7]!.name);
    expect(bank.segments[bank.segmentOf[redescribed]!]).not.toBe(builtin.segment);
    const overridden = [...snap.tags].findIndex((t) => t.name === builtin.tags[5]!.name);
    expect([bank.segmentOf[overridden], bank.rowOf[overridden], bank.thresholds[overridden]]).toEqual([0, 5, Math.fround(0.33)]);

    // the cache counts what the vocabulary owns, not the shared segment
    const stats = s.labelBanks.stats();
    const owned = own.reduce((n, x) => n + segmentBytes(x), 0);
    expect(stats.bytes).toBeGreaterThanOrEqual(owned);
    expect(stats.bytes).toBeLessThan(segmentBytes(builtin.segment));
  });

  it('scores exactly as one monolithic bank of the same rows (logits, passed, description weights)', async () => {
    const snap = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    await expectSameScores(snap);
  });

  it('rebuilds only the segment of the tag an edit touched', async () => {
    const before = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    const [first] = await env.engine.scoreImages([pixels(5)], [before.bank!]);
    const built = () => s.labelBanks.stats().segmentsBuilt;
    const tagId = (name: string) => [...before.tags].find((t) => t.name === name)!.id;

    // new descriptions for one own tag: its segment is rebuilt, every other one is reused as is
    let n = built();
    const target = segmentOfTag(before, 'hard hat');
    await s.descriptions.replace(env.tenantA, tagId('hard hat'), ['a construction helmet.', 'a hard hat on a shelf.', 'a yellow hard hat.']);
    const edited = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    expect(built() - n).toBe(1);
    expect(segmentOfTag(edited, 'hard hat')).not.toBe(target);
    for (const x of ownSegmentsOf(before)) if (x !== target) expect(ownSegmentsOf(edited)).toContain(x);
    expect(edited.bank!.segments[0]).toBe(builtin.segment);
    await expectSameScores(edited);

    // thresholds and disabling built-in tags change the map only: no segment is built
    n = built();
    await s.tags.update(env.tenantA, tagId('steel mezzanine'), { threshold: 0.77 });
    await s.tags.update(env.tenantA, edited.tags.at(100)!.id, { enabled: false });
    const remapped = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    expect(built() - n).toBe(0);
    expect(remapped.bank!.segments).toEqual(edited.bank!.segments);
    remapped.bank!.segments.forEach((x, k) => expect(x).toBe(edited.bank!.segments[k]));
    expect(remapped.bank!.tagCount).toBe(edited.bank!.tagCount - 1);

    // a new tag joins the last segment (or starts one); removing one rebuilds only its segment
    n = built();
    await s.tags.add(env.tenantA, vocabularyId, [{ name: 'pallet rack', descriptions: ['tall pallet racks.'] }]);
    const grown = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    expect(built() - n).toBe(1);
    const kept = ownSegmentsOf(remapped).slice(0, -1);
    for (const x of kept) expect(ownSegmentsOf(grown)).toContain(x);

    n = built();
    const removedFrom = segmentOfTag(grown, 'pallet jack');
    await s.tags.remove(env.tenantA, [tagId('pallet jack')]);
    const shrunk = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    expect(built() - n).toBe(1);
    expect(ownSegmentsOf(shrunk)).not.toContain(removedFrom);
    for (const x of ownSegmentsOf(grown)) if (x !== removedFrom) expect(ownSegmentsOf(shrunk)).toContain(x);
    await expectSameScores(shrunk);

    // a snapshot never changes: while its segments are held it scores as it did; the segment
    // only it used was freed when the cache moved on, so scoring it is refused (fetch it again),
    // never answered from memory another segment now uses
    expect(first!.scores[0]!.tagCount).toBe(before.bank!.tagCount);
    expect(target.lifetime?.hold()).toBe(false);
    const stale = await env.engine.scoreImages([pixels(5)], [before.bank!]).catch((e: unknown) => e);
    expect(isEvictedBankError(stale)).toBe(true);
    for (const x of ownSegmentsOf(shrunk)) {
      expect(x.lifetime?.hold()).toBe(true); // the cached revision's: alive
      x.lifetime!.release();
    }
  });

  it('keeps own segments in an arena within the budget: an evicted vocabulary’s memory is freed at once, its stale snapshot refused', async () => {
    const make = async (services: VocabularyServices, name: string) => {
      const v = await services.vocabularies.create(env.tenantA, { name });
      await services.tags.add(env.tenantA, v.id, ownTags.slice(0, 6));
      return v.id;
    };
    // one such vocabulary's cost, then a budget for two and a half of them
    const probe = await env.services({ labelBanks: { segmentTags: SEGMENT_TAGS } });
    const probeId = await make(probe, 'probe');
    await probe.labelBanks.forVocabulary(env.tenantA, probeId);
    const one = probe.labelBanks.stats().bytes;
    const budget = Math.floor(one * 2.5);
    const small = await env.services({ labelBanks: { segmentTags: SEGMENT_TAGS, cacheBytes: budget } });
    const ids = [probeId];
    for (let i = 1; i < 5; i++) ids.push(await make(small, `arena ${i}`));

    const first = await small.labelBanks.forVocabulary(env.tenantA, ids[0]!);
    const [before] = await env.engine.scoreImages([pixels(6)], [first.bank!]);
    for (const id of ids.slice(1)) await small.labelBanks.forVocabulary(env.tenantA, id);
    const stats = small.labelBanks.stats();
    expect(stats.entries).toBe(2);
    // live arena memory is exactly the cached vocabularies' own segments, and never beyond the budget
    expect(stats.arena.blocks).toBe(2 * ownSegmentsOf(first).length);
    expect(stats.arena.used).toBeLessThanOrEqual(stats.bytes);
    expect(stats.arena.committed).toBeLessThanOrEqual(budget);
    expect(stats.arena.misses).toBe(0);

    // the first vocabulary was evicted: its snapshot's memory is reused, so it is refused …
    const stale = await env.engine.scoreImages([pixels(6)], [first.bank!]).catch((e: unknown) => e);
    expect(isEvictedBankError(stale)).toBe(true);
    // … and fetched again it scores as before
    const again = await small.labelBanks.forVocabulary(env.tenantA, ids[0]!);
    expect(again.revision).toBe(first.revision);
    const [after] = await env.engine.scoreImages([pixels(6)], [again.bank!]);
    expect(Array.from(after!.scores[0]!.logits)).toEqual(Array.from(before!.scores[0]!.logits));
    expect(small.labelBanks.stats().arena.blocks).toBe(2 * ownSegmentsOf(first).length);
  });

  it('decodes the shared built-in segment once for two vocabularies scored together', async () => {
    const other = await s.vocabularies.create(env.tenantA, { name: 'second', fromBuiltin: true });
    await s.tags.add(env.tenantA, other.id, [{ name: 'delivery drone', descriptions: ['a flying drone.'] }]);
    const a = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    const b = await s.labelBanks.forVocabulary(env.tenantA, other.id);
    expect(b.bank!.segments[0]).toBe(a.bank!.segments[0]);
    const runs = () => env.engine.stats().runs.tagDecoder;
    const start = runs();
    await env.engine.scoreImages([pixels(3)], [a.bank!]);
    const one = runs() - start;
    const mid = runs();
    await env.engine.scoreImages([pixels(3)], [a.bank!, b.bank!]);
    // b adds its own segment's run, not a second pass over the built-in rows
    expect(runs() - mid).toBe(one + 1);
  });

  it('stores own segments as float16 when configured: half the bytes, logits within 1e-3', async () => {
    const half = await env.services({ labelBanks: { segmentTags: SEGMENT_TAGS, precision: 'float16' } });
    const h = await half.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    const f = await s.labelBanks.forVocabulary(env.tenantA, vocabularyId);
    expect(h.revision).toBe(f.revision);
    const ownH = ownSegmentsOf(h);
    expect(ownH.every((x) => x.precision === 'float16' && x.embeds instanceof Uint16Array)).toBe(true);
    expect(h.bank!.segments[0]).toBe(builtin.segment); // the pack's segment stays as the pack has it
    const bytes = (xs: typeof ownH) => xs.reduce((n, x) => n + x.embeds.byteLength, 0);
    expect(bytes(ownH)).toBe(bytes(ownSegmentsOf(f)) / 2);
    const [image] = await env.engine.scoreImages([pixels(4)], [h.bank!, f.bank!]);
    let worst = 0;
    for (let c = 0; c < f.bank!.tagCount; c++) worst = Math.max(worst, Math.abs(image!.scores[0]!.logits[c]! - image!.scores[1]!.logits[c]!));
    expect(worst).toBeLessThanOrEqual(1e-3);
  });
});
