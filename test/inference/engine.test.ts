import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import type { ImageEmbeddings, ImagePixels } from '../../src/inference/runtime/engine.ts';
import { buildLabelBank, buildSegment, composeLabelBank, isEvictedBankError, SegmentBuilder, singleSegmentBank, type BankSegment, type LabelBank } from '../../src/inference/scoring/label-bank.ts';
import { SegmentArena } from '../../src/inference/scoring/segment-arena.ts';
import { descriptionWeights, type TagScores } from '../../src/inference/scoring/scores.ts';
import { createLocalInferenceEngine, type LocalInferenceEngine } from '../../src/inference/runtime/local-engine.ts';
import { ModelRunner } from '../../src/inference/runtime/model-runner.ts';
import { preprocessImage } from '../../src/inference/image/preprocess.ts';
import { openModelPack } from '../../src/inference/pack/pack.ts';
import { ClipTokenizer } from '../../src/inference/text/tokenizer.ts';
import { copyPack, hasShared, maxAbsDiff, randomUnitRows, repoRoot, seededRandom, sharedDir, testPackDir } from './helpers.ts';

const packDir = testPackDir();
if (!packDir) console.warn('engine tests skipped: no test pack');

const rand = seededRandom(7);
const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error: error as AppError }),
  );
/** Resolves once `predicate` holds, checking on every turn of the event loop (no timing). */
async function until(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 200_000 && !predicate(); i++) await new Promise((r) => setImmediate(r));
  if (!predicate()) throw new Error('condition never became true');
}

describe.skipIf(!packDir)('local inference engine (worker threads, real onnxruntime)', () => {
  let engine: LocalInferenceEngine;
  let S: number, E: number;
  let smallBank: LabelBank;
  /** Big enough that one decode keeps the worker busy for a while (~1 s on tiny packs). */
  let heavyBank: LabelBank;

  const image = (): ImagePixels => ({ pixels: Float32Array.from({ length: 3 * S * S }, () => rand() * 4 - 2) });
  const bankOf = (key: string, tags: number, maxD: number) =>
    buildLabelBank({
      key,
      embedDim: E,
      tags: Array.from({ length: tags }, (_, c) => ({ descriptions: randomUnitRows(1 + (c % maxD), E, rand), threshold: 0.5 })),
    });

  beforeAll(async () => {
    engine = await createLocalInferenceEngine({
      packDir: packDir!,
      maxBatchSize: 4,
      textBatchSize: 10,
      maxWaitMs: 30,
      maxQueue: 12,
      intraOpThreads: 1,
    });
    await engine.start();
    S = engine.info.imageSize;
    E = engine.info.embedDim;
    smallBank = bankOf('small', 30, 4);
    heavyBank = bankOf('heavy', 60_000, 4);
  });
  afterAll(() => engine?.dispose());

  it('reports the pack and the provider once started', async () => {
    const { manifest } = await openModelPack(packDir!);
    expect(engine.info.provider).toBe('cpu');
    expect(engine.info.packName).toBe(manifest.name);
    expect(engine.info.textEncoderId).toMatch(/^[0-9a-f]{64}$/);
    expect(engine.info.builtinTagCount).toBe(manifest.builtin.count);
  });

  it.skipIf(!hasShared)('scores image bytes in one call: what they were, the scores, and where the time went', async () => {
    const bytes = readFileSync(path.join(sharedDir, 'data', 'images', 'demo4.jpg'));
    const [fromBytes] = await engine.scoreImages([bytes], [smallBank]);
    expect(fromBytes!.source).toMatchObject({ format: 'jpeg', bytes: bytes.length });
    expect(fromBytes!.source!.width).toBeGreaterThan(0);
    expect(fromBytes!.timings.preprocessMs).toBeGreaterThan(0);
    expect(fromBytes!.timings.inferenceMs).toBeGreaterThan(0);
    // the same numbers as preprocessing apart and scoring the pixels
    const { size, mean, std } = (await openModelPack(packDir!)).manifest.image;
    const { pixels } = await preprocessImage(bytes, { size, mean, std });
    const [fromPixels] = await engine.scoreImages([{ pixels }], [smallBank]);
    expect(fromPixels!.source).toBeNull();
    expect(fromPixels!.timings.preprocessMs).toBe(0);
    expect(Array.from(fromPixels!.embeddings.data)).toEqual(Array.from(fromBytes!.embeddings.data));
    expect(Array.from(fromPixels!.scores[0]!.logits)).toEqual(Array.from(fromBytes!.scores[0]!.logits));
    // embeddings skip the encoder, and say nothing of a source
    const runs = engine.stats().runs.imageEncoder;
    const [again] = await engine.scoreImages([fromBytes!.embeddings], [smallBank]);
    expect(engine.stats().runs.imageEncoder).toBe(runs);
    expect(again!.source).toBeNull();
    expect(Array.from(again!.scores[0]!.logits)).toEqual(Array.from(fromBytes!.scores[0]!.logits));
    await expect(engine.scoreImages([new TextEncoder().encode('not an image')], [smallBank])).rejects.toMatchObject({ code: 'BAD_IMAGE' });
  });

  it("counts tokens in the workers as the pack's tokenizer does, start and end included and uncut", async () => {
    const pack = await openModelPack(packDir!);
    const tokenizer = await ClipTokenizer.fromFile(pack.file(pack.manifest.tokenizer.file));
    const texts = ['', 'a photo of a cat.', 'Ünïcödé & <b>html</b> – 東京タワー', 'a very long description '.repeat(30)];
    const counts = await engine.countTokens(texts);
    expect(counts).toEqual(texts.map((t) => tokenizer.encode(t).length + 2));
    expect(counts[0]).toBe(2);
    expect(counts[3]).toBeGreaterThan(engine.info.textContext); // not cut to the context
    expect(await engine.countTokens([])).toEqual([]);
  });

  it('counts tokens past a full queue: a count is not batched work', async () => {
    const [embedding] = await engine.encodeImages([image()]);
    const heavy = engine.scoreImages([embedding!], [heavyBank]);
    await until(() => engine.stats().workers.busy === 1);
    const admitted = Array.from({ length: 12 }, () => engine.encodeImages([image()]));
    try {
      await until(() => engine.stats().queued === 12);
      await expect(engine.encodeImages([image()])).rejects.toMatchObject({ code: 'OVERLOADED' });
      expect(await engine.countTokens(['a photo of a cat.'])).toHaveLength(1);
    } finally {
      await heavy;
      await Promise.all(admitted);
    }
  });

  it('scores like the model run in-process, and reuses embeddings across banks', async () => {
    const images = [image(), image()];
    const [scored] = await Promise.all([engine.scoreImages(images, [smallBank], { explain: true })]);
    const runner = new ModelRunner(await openModelPack(packDir!), { provider: 'cpu', cudaDeviceId: 0, intraOpThreads: 1 });
    try {
      const pixels = new Float32Array(2 * 3 * S * S);
      images.forEach((im, i) => pixels.set(im.pixels, i * 3 * S * S));
      const embeds = await runner.encodeImages(pixels, 2);
      const direct = await runner.decode(embeds, 2, smallBank.segments[0]!, { chunkTags: 1024, explain: true });
      for (let b = 0; b < 2; b++) {
        const s = scored[b]!.scores[0]!;
        expect(maxAbsDiff(s.logits, direct.logits.subarray(b * 30, (b + 1) * 30))).toBeLessThan(1e-5);
        for (let c = 0; c < 30; c++) {
          const n = 1 + (c % 4); // bankOf's description counts
          const from = (b * 30 + c) * 4;
          expect(descriptionWeights(s, c)).toHaveLength(n);
          expect(maxAbsDiff(descriptionWeights(s, c), direct.weights!.subarray(from, from + n))).toBeLessThan(1e-5);
        }
      }
    } finally {
      await runner.dispose();
    }

    const other = bankOf('other', 12, 3);
    const encoderRuns = engine.stats().runs.imageEncoder;
    const again = await engine.scoreImages(
      scored.map((s) => s.embeddings),
      [smallBank, other],
    );
    expect(engine.stats().runs.imageEncoder).toBe(encoderRuns);
    expect(maxAbsDiff(again[1]!.scores[0]!.logits, scored[1]!.scores[0]!.logits)).toBeLessThan(1e-6);
    expect(again[0]!.scores[1]!.tagCount).toBe(12);
    expect(again[0]!.scores[0]!.explained).toBeUndefined();
    expect(() => descriptionWeights(again[0]!.scores[0]!, 0)).toThrow(/explain: true/);
  });

  it('merges concurrent requests into shared runs', async () => {
    const before = engine.stats();
    const results = await Promise.all(Array.from({ length: 6 }, () => engine.encodeImages([image()])));
    const after = engine.stats();
    expect(results.flat()).toHaveLength(6);
    // six single-image callers, batches of at most four: two encoder runs, not six
    expect(after.runs.imageEncoder - before.runs.imageEncoder).toBe(2);
    expect(after.batchedUnits - before.batchedUnits).toBe(6);
  });

  it('answers OVERLOADED with a retry hint when the queue is full, and serves what it admitted', async () => {
    const [embedding] = await engine.encodeImages([image()]);
    const heavy = engine.scoreImages([embedding!], [heavyBank]);
    await until(() => engine.stats().workers.busy === 1);

    const admitted = Array.from({ length: 12 }, () => engine.encodeImages([image()], { fairnessKey: 'a' }));
    const rejected = await settle(engine.encodeImages([image()], { fairnessKey: 'b' }));
    expect(rejected.ok).toBe(false);
    if (!rejected.ok) {
      expect(rejected.error.code).toBe('OVERLOADED');
      expect(rejected.error.details.retryAfterMs).toBeGreaterThan(0);
    }
    expect(engine.stats().queued).toBe(12);
    await heavy;
    expect((await Promise.all(admitted)).flat()).toHaveLength(12);
    expect(engine.stats().queued).toBe(0);
  });

  it('removes a cancelled request from the queue and drops the result of a cancelled running one', async () => {
    const [embedding] = await engine.encodeImages([image()]);
    const running = new AbortController();
    const heavy = settle(engine.scoreImages([embedding!], [heavyBank], { signal: running.signal }));
    await until(() => engine.stats().workers.busy === 1);

    const queued = new AbortController();
    const before = engine.stats();
    const cancelledQueued = settle(engine.encodeImages([image(), image()], { signal: queued.signal }));
    const kept = engine.encodeImages([image()]);
    await until(() => engine.stats().queued === 3);
    queued.abort();
    expect(engine.stats().queued).toBe(1);
    const q = await cancelledQueued;
    expect(q.ok ? 'resolved' : q.error.code).toBe('CANCELLED');

    running.abort();
    const r = await heavy;
    expect(r.ok ? 'resolved' : r.error.code).toBe('CANCELLED');
    expect(engine.stats().workers.busy).toBe(1); // the run itself goes on; only its result is dropped

    expect(await kept).toHaveLength(1);
    const after = engine.stats();
    expect(after.batchedUnits - before.batchedUnits).toBe(1); // the two cancelled images never ran
    expect(after.cancelled - before.cancelled).toBe(2);
  });

  it('does not let one tenant\'s burst starve another', async () => {
    const [embedding] = await engine.encodeImages([image()]);
    const heavy = engine.scoreImages([embedding!], [heavyBank]);
    await until(() => engine.stats().workers.busy === 1);

    const order: string[] = [];
    const track = (name: string, p: Promise<unknown>) => p.then(() => order.push(name));
    const burst = Array.from({ length: 10 }, (_, i) => track(`a${i}`, engine.encodeImages([image()], { fairnessKey: 'tenant-a' })));
    const small = Array.from({ length: 2 }, (_, i) => track(`b${i}`, engine.encodeImages([image()], { fairnessKey: 'tenant-b' })));
    await Promise.all([heavy, ...burst, ...small]);
    // first-come-first-served would serve b0/b1 in the third batch, after a0..a7;
    // round-robin puts them in the first batch of four
    expect(order.indexOf('b0')).toBeLessThan(4);
    expect(order.indexOf('b1')).toBeLessThan(4);
    expect(order.indexOf('a9')).toBe(order.length - 1);
  });

  it('keeps the event loop free while the model is busy', async () => {
    const [embedding] = await engine.encodeImages([image()]);
    let maxGap = 0;
    let last = performance.now();
    let probing = true;
    const probe = () => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      if (probing) setTimeout(probe, 1);
    };
    probe();
    const started = performance.now();
    await engine.scoreImages([embedding!, embedding!], [heavyBank]);
    const busyFor = performance.now() - started;
    probing = false;
    // behaviour, not speed: the main thread kept turning while a long run went on elsewhere
    expect(busyFor).toBeGreaterThan(maxGap);
    expect(maxGap).toBeLessThan(200);
  });

  it('embeds texts in batches: unit rows, truncation flags, batch-independent', async () => {
    const texts = Array.from({ length: 70 }, (_, i) => `a photo of thing number ${i}.`);
    texts[5] = 'a very long description ' + 'that keeps going '.repeat(40);
    const before = engine.stats().runs.textEncoder;
    const out = await engine.embedTexts(texts);
    expect(engine.stats().runs.textEncoder - before).toBe(7); // batches of 10
    expect(out.embeddings).toHaveLength(70 * E);
    expect(out.dim).toBe(E);
    expect(out.textEncoderId).toBe(engine.info.textEncoderId);
    expect(out.truncated.filter(Boolean)).toEqual([true]);
    expect(out.truncated[5]).toBe(true);
    for (let i = 0; i < 70; i++) expect(Math.hypot(...out.embeddings.subarray(i * E, (i + 1) * E))).toBeCloseTo(1, 4);
    const alone = await engine.embedTexts([texts[69]!]);
    expect(maxAbsDiff(alone.embeddings, out.embeddings.subarray(69 * E))).toBeLessThan(1e-5);
  });

  it('rejects image embeddings of another pack and banks of another width', async () => {
    const foreign: ImageEmbeddings = { kind: 'image-embeddings', packName: 'other', tokens: 1, dim: E, data: new Float32Array(E) };
    await expect(engine.scoreImages([foreign], [smallBank])).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    const narrow = buildLabelBank({ key: 'narrow', embedDim: 3, tags: [{ descriptions: new Float32Array([1, 0, 0]), threshold: 0.5 }] });
    await expect(engine.scoreImages([image()], [narrow])).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});

describe.skipIf(!packDir)('segmented banks', () => {
  let engine: LocalInferenceEngine;
  let S: number, E: number;
  const CHUNK = 4;
  const random = seededRandom(2024);
  const image = (): ImagePixels => ({ pixels: Float32Array.from({ length: 3 * S * S }, () => random() * 4 - 2) });
  const tagDecoderRuns = () => engine.stats().runs.tagDecoder;
  /** Decoder runs for one batch over a segment of `rows` rows. */
  const runsFor = (rows: number) => Math.ceil(rows / CHUNK);
  let images: ImageEmbeddings[];

  beforeAll(async () => {
    engine = await createLocalInferenceEngine({ packDir: packDir!, maxBatchSize: 4, maxWaitMs: 30, maxQueue: 64, decoderChunkTags: CHUNK, intraOpThreads: 1 });
    await engine.start();
    S = engine.info.imageSize;
    E = engine.info.embedDim;
    images = await engine.encodeImages([image(), image(), image()]);
  });
  afterAll(() => engine?.dispose());

  function shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  function expectSameScores(actual: TagScores, expected: TagScores, explained: boolean): void {
    expect(actual.tagCount).toBe(expected.tagCount);
    expect(maxAbsDiff(actual.logits, expected.logits)).toBeLessThanOrEqual(1e-6);
    expect(Array.from(actual.passed)).toEqual(Array.from(expected.passed));
    expect(Array.from(actual.thresholds)).toEqual(Array.from(expected.thresholds));
    if (!explained) return;
    for (let i = 0; i < expected.tagCount; i++) {
      const want = descriptionWeights(expected, i);
      expect(descriptionWeights(actual, i)).toHaveLength(want.length);
      expect(maxAbsDiff(descriptionWeights(actual, i), want)).toBeLessThanOrEqual(1e-6);
    }
  }

  it('scores a vocabulary split into shuffled segments exactly as one monolithic bank', async () => {
    const counts = [1, 5, 2, 7, 3, 1, 4, 6, 2, 3, 1, 5];
    const C = counts.length;
    const rows = counts.map((n) => randomUnitRows(n, E, random));
    // thresholds around where the tiny pack's probabilities fall, so some tags pass and some do not
    const probe = await engine.scoreImages(images, [buildLabelBank({ key: 'probe', embedDim: E, tags: rows.map((r) => ({ descriptions: r, threshold: 0.5 })) })]);
    const probabilities = probe.flatMap((p) => Array.from(p.scores[0]!.probabilities)).sort((a, b) => a - b);
    const median = probabilities[Math.floor(probabilities.length / 2)]!;
    const thresholds = Float32Array.from(counts, (_, i) => Math.min(1, Math.max(0, median + (i % 3 === 0 ? 0 : (random() - 0.5) * 0.01))));
    const mono = buildLabelBank({ key: 'mono', embedDim: E, tags: rows.map((r, i) => ({ descriptions: r, threshold: thresholds[i]! })) });

    // tags in shuffled order, 4 per segment (each with its own maxDescriptions), plus one row no tag points at
    const order = shuffled(Array.from({ length: C }, (_, i) => i));
    const parts = [order.slice(0, 4), order.slice(4, 8), order.slice(8)];
    const segmentOf = new Uint16Array(C);
    const rowOf = new Uint32Array(C);
    const listed = shuffled([0, 1, 2]); // the order the segments are listed in the bank
    const segments: BankSegment[] = new Array(3);
    parts.forEach((tags, p) => {
      const at = listed[p]!;
      const segmentRows = tags.map((t) => rows[t]!);
      if (p === 1) segmentRows.splice(2, 0, randomUnitRows(2, E, random)); // the orphan row
      segments[at] = buildSegment({ key: `part-${p}`, embedDim: E, tags: segmentRows });
      tags.forEach((t, k) => {
        segmentOf[t] = at;
        rowOf[t] = p === 1 && k >= 2 ? k + 1 : k;
      });
    });
    expect(new Set(segments.map((s) => s.maxDescriptions)).size).toBeGreaterThan(1);
    const split = composeLabelBank({ key: 'split', segments, tags: { segmentOf, rowOf, thresholds: thresholds.slice() } });

    const [monoAlone, splitAlone, together] = [
      await engine.scoreImages(images, [mono], { explain: true }),
      await (async () => {
        const before = tagDecoderRuns();
        const scored = await engine.scoreImages(images, [split], { explain: true });
        // each segment once for the three images, in chunks of CHUNK rows (the orphan row included)
        expect(tagDecoderRuns() - before).toBe(segments.reduce((sum, s) => sum + runsFor(s.tagCount), 0));
        return scored;
      })(),
      await engine.scoreImages(images, [split, mono], { explain: true }),
    ];
    for (let b = 0; b < images.length; b++) {
      expectSameScores(splitAlone[b]!.scores[0]!, monoAlone[b]!.scores[0]!, true);
      expectSameScores(together[b]!.scores[0]!, monoAlone[b]!.scores[0]!, true);
      expectSameScores(together[b]!.scores[1]!, monoAlone[b]!.scores[0]!, true);
      for (let i = 0; i < C; i++) expect(descriptionWeights(splitAlone[b]!.scores[0]!, i)).toHaveLength(counts[i]!);
      expect(splitAlone[b]!.scores[0]!.bankKey).toBe('split');
    }
    const passed = monoAlone.flatMap((s) => Array.from(s.scores[0]!.passed));
    expect(passed).toContain(1);
    expect(passed).toContain(0);
    // and without explain: the same logits, no weights
    const plain = await engine.scoreImages(images, [split]);
    expect(plain[0]!.scores[0]!.explained).toBeUndefined();
    expectSameScores(plain[2]!.scores[0]!, monoAlone[2]!.scores[0]!, false);
  });

  it('does not decode a segment no tag points at', async () => {
    const segA = buildSegment({ key: 'unused-A', embedDim: E, tags: Array.from({ length: 9 }, () => randomUnitRows(2, E, random)) });
    const segB = buildSegment({ key: 'used-B', embedDim: E, tags: Array.from({ length: 5 }, () => randomUnitRows(3, E, random)) });
    const onlyB = composeLabelBank({
      key: 'only-b',
      segments: [segA, segB],
      tags: { segmentOf: Uint16Array.of(1, 1, 1), rowOf: Uint32Array.of(4, 0, 2), thresholds: Float32Array.of(0.5, 0.5, 0.5) },
    });
    const before = engine.stats();
    const [scored] = await engine.scoreImages([images[0]!], [onlyB], { explain: true });
    const after = engine.stats();
    expect(after.runs.tagDecoder - before.runs.tagDecoder).toBe(runsFor(segB.tagCount));
    expect(after.batches - before.batches).toBe(1);
    expect(after.batchedUnits - before.batchedUnits).toBe(1);
    // and what it reports is segment B's rows
    const [whole] = await engine.scoreImages([images[0]!], [singleSegmentBank('b-alone', segB, new Float32Array(5).fill(0.5))], { explain: true });
    const w = whole!.scores[0]!;
    expect(Array.from(scored!.scores[0]!.logits)).toEqual([4, 0, 2].map((r) => w.logits[r]));
    expect(Array.from(descriptionWeights(scored!.scores[0]!, 0))).toEqual(Array.from(descriptionWeights(w, 4)));
  });

  it('decodes a segment two banks share once per chunk, each bank keeping its own map and thresholds', async () => {
    const shared = buildSegment({ key: 'shared-rows', embedDim: E, tags: Array.from({ length: 10 }, (_, c) => randomUnitRows(1 + (c % 3), E, random)) });
    const everything = singleSegmentBank('x-all-pass', shared, new Float32Array(10).fill(0));
    const someRows = composeLabelBank({
      key: 'y-none-pass',
      segments: [shared],
      tags: { segmentOf: new Uint16Array(4), rowOf: Uint32Array.of(9, 3, 3, 0), thresholds: new Float32Array(4).fill(1) },
    });
    const before = engine.stats();
    const scored = await engine.scoreImages(images.slice(0, 2), [everything, someRows], { explain: true });
    const after = engine.stats();
    expect(after.runs.tagDecoder - before.runs.tagDecoder).toBe(runsFor(10)); // not twice that
    expect(after.batches - before.batches).toBe(1);
    expect(after.batchedUnits - before.batchedUnits).toBe(2); // two images, one unit each
    for (const { scores } of scored) {
      const [x, y] = scores as [TagScores, TagScores];
      expect([x.bankKey, y.bankKey]).toEqual(['x-all-pass', 'y-none-pass']);
      expect(Array.from(x.passed)).toEqual(new Array(10).fill(1));
      expect(Array.from(y.passed)).toEqual([0, 0, 0, 0]);
      expect(Array.from(x.thresholds)).toEqual(new Array(10).fill(0));
      expect(Array.from(y.thresholds)).toEqual([1, 1, 1, 1]);
      expect(Array.from(y.logits)).toEqual([9, 3, 3, 0].map((r) => x.logits[r]));
      expect(Array.from(descriptionWeights(y, 0))).toEqual(Array.from(descriptionWeights(x, 9)));
      expect(descriptionWeights(y, 0)).toHaveLength(1 + (9 % 3));
    }
    // a second call finds the segment checked already and still decodes it once
    const again = engine.stats().runs.tagDecoder;
    await engine.scoreImages([images[2]!], [someRows, everything, someRows]);
    expect(engine.stats().runs.tagDecoder - again).toBe(runsFor(10));
  });

  it('batches concurrent requests of two vocabularies on the built-in segment together', async () => {
    const builtin = await engine.builtinVocabulary();
    const n = builtin.segment.tagCount;
    const first = composeLabelBank({
      key: 'vocab-p',
      segments: [builtin.segment],
      tags: { segmentOf: new Uint16Array(3), rowOf: Uint32Array.of(0, 7, n - 1), thresholds: Float32Array.of(0.5, 0.5, 0.5) },
    });
    const second = composeLabelBank({
      key: 'vocab-q',
      segments: [builtin.segment],
      tags: { segmentOf: new Uint16Array(2), rowOf: Uint32Array.of(7, 1), thresholds: Float32Array.of(0.2, 0.9) },
    });
    const reference = await engine.scoreImages([images[0]!, images[1]!], [builtin.bank]);
    const before = engine.stats();
    const [p, q] = await Promise.all([engine.scoreImages([images[0]!], [first]), engine.scoreImages([images[1]!], [second])]);
    const after = engine.stats();
    expect(after.batches - before.batches).toBe(1);
    expect(after.batchedUnits - before.batchedUnits).toBe(2);
    expect(after.runs.tagDecoder - before.runs.tagDecoder).toBe(runsFor(n));
    const ref = reference.map((r) => r.scores[0]!.logits);
    expect(maxAbsDiff(p![0]!.scores[0]!.logits, [0, 7, n - 1].map((r) => ref[0]![r]!))).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(q![0]!.scores[0]!.logits, [7, 1].map((r) => ref[1]![r]!))).toBeLessThanOrEqual(1e-6);
    expect(Array.from(q![0]!.scores[0]!.thresholds)).toEqual([Math.fround(0.2), Math.fround(0.9)]);
  });

  it('scores a float16 segment within 1e-3 of the float32 one', async () => {
    const rows = Array.from({ length: 9 }, (_, c) => randomUnitRows(1 + (c % 4), E, random));
    const full = buildLabelBank({ key: 'f32', embedDim: E, tags: rows.map((r) => ({ descriptions: r, threshold: 0.5 })) });
    const half = buildLabelBank({ key: 'f16', embedDim: E, precision: 'float16', tags: rows.map((r) => ({ descriptions: r, threshold: 0.5 })) });
    expect(half.segments[0]!.embeds).toBeInstanceOf(Uint16Array);
    const scored = await engine.scoreImages(images, [full, half], { explain: true });
    let largest = 0;
    for (const { scores } of scored) {
      const [a, b] = scores as [TagScores, TagScores];
      largest = Math.max(largest, maxAbsDiff(a.logits, b.logits));
      for (let i = 0; i < 9; i++) expect(maxAbsDiff(descriptionWeights(a, i), descriptionWeights(b, i))).toBeLessThanOrEqual(1e-3);
    }
    expect(largest).toBeLessThanOrEqual(1e-3);
    expect(largest).toBeGreaterThan(0); // the halves really were used
  });

  it('holds arena segments from the call until decoded, and refuses a bank whose segment was freed', async () => {
    const arena = new SegmentArena(8 << 20);
    const rows = Array.from({ length: 6 }, (_, c) => randomUnitRows(1 + (c % 3), E, random));
    const builder = new SegmentBuilder('arena-own', rows.length, 3, E, 'float32', arena);
    rows.forEach((r, c) => builder.setTag(c, r));
    const segment = builder.build();
    const bank = singleSegmentBank('arena-bank', segment, new Float32Array(rows.length).fill(0.5));
    const plain = buildLabelBank({ key: 'arena-plain', embedDim: E, tags: rows.map((r) => ({ descriptions: r, threshold: 0.5 })) });

    const scoring = engine.scoreImages(images, [bank, plain]);
    segment.lifetime!.release(); // the owner lets go (an eviction) while the call is in flight
    expect(arena.stats().blocks).toBe(1); // the engine still holds it
    const scored = await scoring;
    for (const { scores } of scored) expect(maxAbsDiff(scores[0]!.logits, scores[1]!.logits)).toBeLessThanOrEqual(1e-6);
    expect(arena.stats().blocks).toBe(0); // freed once the decode was done

    const late = await settle(engine.scoreImages(images, [bank]));
    expect(late.ok).toBe(false);
    expect(isEvictedBankError(late.ok ? undefined : late.error)).toBe(true);
    expect(late.ok ? undefined : late.error.code).toBe('OVERLOADED');
  });
});

describe.skipIf(!packDir)('engine settings', () => {
  it('refuses bad image limits when it is made, not at the first image', async () => {
    await expect(createLocalInferenceEngine({ packDir: packDir!, imageLimits: { maxBytes: 0, maxPixels: 1e6, maxDimension: 1000 } })).rejects.toThrow(/maxBytes must be a positive number/);
  });
});

describe.skipIf(!packDir)('inference worker crashes', () => {
  it('fails the requests in flight with a retryable error and replaces the worker', async () => {
    const engine = await createLocalInferenceEngine({
      packDir: packDir!,
      maxWaitMs: 1,
      intraOpThreads: 1,
      workerUrl: new URL('./fixtures/crashing-worker.ts', import.meta.url),
    });
    try {
      await engine.start();
      const E = engine.info.embedDim;
      const S = engine.info.imageSize;
      const [embedding] = await engine.encodeImages([{ pixels: new Float32Array(3 * S * S).fill(0.5) }]);
      const crashBank = buildLabelBank({
        key: 'crash:now',
        embedDim: E,
        tags: Array.from({ length: 5000 }, () => ({ descriptions: randomUnitRows(2, E, rand), threshold: 0.5 })),
      });
      const inFlight = settle(engine.scoreImages([embedding!], [crashBank]));
      await until(() => engine.stats().workers.busy === 1);
      const waiting = engine.encodeImages([{ pixels: new Float32Array(3 * S * S).fill(0.25) }]);

      const crashed = await inFlight;
      expect(crashed.ok).toBe(false);
      if (!crashed.ok) {
        expect(crashed.error).toBeInstanceOf(AppError);
        expect(crashed.error.code).toBe('MODEL_UNAVAILABLE');
        expect(crashed.error.details.retryable).toBe(true);
        expect(crashed.error.details.retryAfterMs).toBeGreaterThan(0);
      }
      // the request that was waiting is served by the replacement worker
      expect(await waiting).toHaveLength(1);
      const stats = engine.stats();
      expect(stats.workers.crashes).toBe(1);
      expect(stats.workers.restarts).toBe(1);
      expect(stats.workers.ready).toBe(1);
      const fine = buildLabelBank({ key: 'fine', embedDim: E, tags: [{ descriptions: randomUnitRows(1, E, rand), threshold: 0.5 }] });
      const [scored] = await engine.scoreImages([embedding!], [fine]);
      expect(scored!.scores[0]!.tagCount).toBe(1);
    } finally {
      await engine.dispose();
    }
  });
});

describe.skipIf(!packDir)('engine start-up and shutdown', () => {
  const cudaBundled = existsSync(path.join(repoRoot, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so'));

  it.skipIf(cudaBundled)('fails clearly when CUDA is required but missing, and falls back when allowed', async () => {
    const strict = await createLocalInferenceEngine({ packDir: packDir!, provider: 'cuda', intraOpThreads: 1 });
    try {
      await expect(strict.start()).rejects.toThrow(/CUDA was requested but is not available/);
    } finally {
      await strict.dispose();
    }
    const lenient = await createLocalInferenceEngine({ packDir: packDir!, provider: 'cuda-or-cpu', intraOpThreads: 1 });
    try {
      expect((await lenient.start()).provider).toBe('cpu');
    } finally {
      await lenient.dispose();
    }
  });

  it('names a graph onnxruntime cannot load', async () => {
    const dir = copyPack(packDir!);
    try {
      const file = path.join(dir, 'tag_decoder.onnx');
      writeFileSync(file, Buffer.alloc(statSync(file).size, 7)); // same size, not a model
      const engine = await createLocalInferenceEngine({ packDir: dir, intraOpThreads: 1 });
      try {
        const err = await engine.start().then(() => null, (e: unknown) => e as AppError);
        expect(err?.code).toBe('MODEL_UNAVAILABLE');
        expect(err?.message).toMatch(/tag_decoder\.onnx: onnxruntime cannot load it/);
      } finally {
        await engine.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails a start that dispose interrupts instead of leaving it pending', async () => {
    const engine = await createLocalInferenceEngine({ packDir: packDir!, intraOpThreads: 1 });
    const starting = settle(engine.start());
    await engine.dispose();
    const result = await starting;
    expect(result.ok ? 'started' : result.error.code).toBe('MODEL_UNAVAILABLE');
  });

  it('on dispose lets the running batch finish and fails what is queued', async () => {
    const engine = await createLocalInferenceEngine({ packDir: packDir!, maxBatchSize: 2, maxWaitMs: 1, intraOpThreads: 1 });
    await engine.start();
    const S = engine.info.imageSize;
    const img = () => ({ pixels: new Float32Array(3 * S * S).fill(0.1) });
    const running = settle(engine.encodeImages([img(), img()]));
    await until(() => engine.stats().workers.busy === 1);
    const queued = settle(engine.encodeImages([img()]));
    await engine.dispose();
    const [r, q] = await Promise.all([running, queued]);
    expect(r.ok).toBe(true);
    expect(q.ok ? 'resolved' : q.error.code).toBe('MODEL_UNAVAILABLE');
    await expect(engine.encodeImages([img()])).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE' });
  });
});

describe.skipIf(!packDir)('pack self-test through the engine', () => {
  it('reproduces the exporter\'s PyTorch outputs for the pack\'s fixed inputs', async (ctx) => {
    const engine = await createLocalInferenceEngine({ packDir: packDir!, intraOpThreads: 1 });
    try {
      await engine.start();
      const report = await engine.selftest();
      if (!report) {
        console.warn(`self-test skipped: ${packDir} has no selftest.json`);
        ctx.skip();
        return;
      }
      for (const c of report.checks) expect({ name: c.name, ok: c.ok, diff: c.maxAbsDiff }).toMatchObject({ name: c.name, ok: true });
      expect(report.checks.map((c) => c.name)).toContain('open-set logits');
      expect(report.ok).toBe(true);
    } finally {
      await engine.dispose();
    }
  });
});
