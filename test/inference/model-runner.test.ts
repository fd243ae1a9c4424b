import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLabelBank, buildSegment, descriptionCount, type LabelBank } from '../../src/inference/scoring/label-bank.ts';
import { float16ToFloat32, float32ToFloat16 } from '../../src/inference/pack/float16.ts';
import { ModelRunner } from '../../src/inference/runtime/model-runner.ts';
import { openModelPack, type ModelPack } from '../../src/inference/pack/pack.ts';
import { maxAbsDiff, randomUnitRows, seededRandom, testPackDir } from './helpers.ts';

const packDir = testPackDir();
if (!packDir) console.warn('model runner tests skipped: no test pack');

describe.skipIf(!packDir)('model runner (one thread, real onnxruntime)', () => {
  let pack: ModelPack;
  let runner: ModelRunner;
  let S: number, T: number, E: number;
  const rand = seededRandom(42);

  beforeAll(async () => {
    pack = await openModelPack(packDir!);
    runner = new ModelRunner(pack, { provider: 'cpu', cudaDeviceId: 0, intraOpThreads: 1 });
    S = pack.manifest.image.size;
    T = pack.manifest.dims.imageTokens;
    E = pack.manifest.dims.embedDim;
  });
  afterAll(() => runner?.dispose());

  const randomPixels = (n: number) => Float32Array.from({ length: n * 3 * S * S }, () => rand() * 4 - 2);

  /** A bank whose tags have 1..maxD descriptions (deliberately unequal). */
  function raggedBank(key: string, tags: number, maxD: number): { bank: LabelBank; rows: Float32Array[] } {
    const rows = Array.from({ length: tags }, (_, c) => randomUnitRows(1 + ((c * 7) % maxD), E, rand));
    const bank = buildLabelBank({ key, embedDim: E, tags: rows.map((r) => ({ descriptions: r, threshold: 0.5 })) });
    return { bank, rows };
  }

  it('creates all sessions on the CPU and encodes images to [B,T,E]', async () => {
    expect(await runner.warmup()).toBe('cpu');
    const embeds = await runner.encodeImages(randomPixels(3), 3);
    expect(embeds.length).toBe(3 * T * E);
    expect(embeds.every(Number.isFinite)).toBe(true);
  });

  it('encodes an image the same alone as inside a batch', async () => {
    const pixels = randomPixels(3);
    const batch = await runner.encodeImages(pixels, 3);
    const second = await runner.encodeImages(pixels.slice(3 * S * S, 6 * S * S), 1);
    expect(maxAbsDiff(batch.subarray(T * E, 2 * T * E), second)).toBeLessThan(1e-5);
  });

  it('scores tags with unequal description counts exactly as each tag alone with its own D', async () => {
    const images = await runner.encodeImages(randomPixels(2), 2);
    const { bank, rows } = raggedBank('ragged', 9, 6);
    expect(new Set(rows.map((r) => r.length / E)).size).toBeGreaterThan(3);
    const whole = await runner.decode(images, 2, bank.segments[0]!, { chunkTags: 1024, explain: true });
    const D = bank.segments[0]!.maxDescriptions;

    for (let c = 0; c < rows.length; c++) {
      const n = rows[c]!.length / E;
      const alone = buildLabelBank({ key: `alone-${c}`, embedDim: E, tags: [{ descriptions: rows[c]!, threshold: 0.5 }] });
      expect(alone.segments[0]!.maxDescriptions).toBe(n);
      const single = await runner.decode(images, 2, alone.segments[0]!, { chunkTags: 1024, explain: true });
      for (let b = 0; b < 2; b++) {
        expect(Math.abs(whole.logits[b * bank.tagCount + c]! - single.logits[b]!)).toBeLessThan(1e-5);
        const w = whole.weights!.subarray((b * bank.tagCount + c) * D, (b * bank.tagCount + c + 1) * D);
        expect(maxAbsDiff(w.subarray(0, n), single.weights!.subarray(b * n, (b + 1) * n))).toBeLessThan(1e-5);
        // padding gets no weight, real descriptions share all of it
        expect(maxAbsDiff(w.subarray(n), new Float32Array(D - n))).toBeLessThan(1e-6);
        expect(w.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 5);
      }
      expect(descriptionCount(bank, c)).toBe(n);
    }
  });

  it('gives the same logits and weights in chunks of tags as in one run', async () => {
    const images = await runner.encodeImages(randomPixels(3), 3);
    const segment = raggedBank('chunked', 50, 5).bank.segments[0]!;
    const before = runner.runs.tagDecoder;
    const one = await runner.decode(images, 3, segment, { chunkTags: 1000, explain: true });
    expect(runner.runs.tagDecoder - before).toBe(1);
    for (const chunk of [1, 7, 16, 49]) {
      const runsBefore = runner.runs.tagDecoder;
      const parts = await runner.decode(images, 3, segment, { chunkTags: chunk, explain: true });
      expect(runner.runs.tagDecoder - runsBefore).toBe(Math.ceil(50 / chunk));
      expect(maxAbsDiff(parts.logits, one.logits)).toBeLessThan(1e-5);
      expect(maxAbsDiff(parts.weights!, one.weights!)).toBeLessThan(1e-6);
    }
    const noWeights = await runner.decode(images, 3, segment, { chunkTags: 16, explain: false });
    expect(noWeights.weights).toBeUndefined();
    expect(maxAbsDiff(noWeights.logits, one.logits)).toBeLessThan(1e-5);
  });

  it('reads a shared segment and a plain copy of it alike', async () => {
    const images = await runner.encodeImages(randomPixels(1), 1);
    const segment = raggedBank('shared', 20, 4).bank.segments[0]!;
    const plain = { ...segment, embeds: segment.embeds.slice(), mask: segment.mask.slice() };
    expect(plain.embeds.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    const a = await runner.decode(images, 1, segment, { chunkTags: 6, explain: false });
    const b = await runner.decode(images, 1, plain, { chunkTags: 6, explain: false });
    expect(maxAbsDiff(a.logits, b.logits)).toBe(0);
  });

  it('widens a float16 segment to exactly the float32 values its halves stand for', async () => {
    const images = await runner.encodeImages(randomPixels(2), 2);
    const { rows } = raggedBank('half-source', 11, 4);
    const full = buildSegment({ key: 'f32', embedDim: E, tags: rows });
    const half = buildSegment({ key: 'f16', embedDim: E, tags: rows, precision: 'float16' });
    const rounded = buildSegment({ key: 'rounded', embedDim: E, tags: rows.map((r) => float16ToFloat32(float32ToFloat16(r))) });
    expect(half.embeds).toBeInstanceOf(Uint16Array);
    const options = { chunkTags: 1024, explain: true };
    const a = await runner.decode(images, 2, half, options);
    const b = await runner.decode(images, 2, rounded, options);
    const c = await runner.decode(images, 2, full, options);
    expect(maxAbsDiff(a.logits, b.logits)).toBe(0);
    expect(maxAbsDiff(a.weights!, b.weights!)).toBe(0);
    expect(maxAbsDiff(a.logits, c.logits)).toBeLessThanOrEqual(1e-3);
    expect(maxAbsDiff(a.logits, c.logits)).toBeGreaterThan(0); // it really ran on halves
    expect(maxAbsDiff(a.weights!, c.weights!)).toBeLessThanOrEqual(1e-3);
    // in chunks (each widened into the same staging buffer) and from plain, unshared memory
    const chunked = await runner.decode(images, 2, half, { chunkTags: 3, explain: true });
    expect(maxAbsDiff(chunked.logits, a.logits)).toBeLessThan(1e-5);
    expect(maxAbsDiff(chunked.weights!, a.weights!)).toBeLessThan(1e-6);
    const plain = { ...half, embeds: half.embeds.slice(), mask: half.mask.slice() };
    expect(plain.embeds.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    const fromPlain = await runner.decode(images, 2, plain, { chunkTags: 5, explain: false });
    expect(maxAbsDiff(fromPlain.logits, a.logits)).toBeLessThan(1e-5);
  });

  it('encodes token ids to L2-normalised text embeddings [N,E]', async () => {
    const L = pack.manifest.dims.textContext;
    const ids = new BigInt64Array(3 * L);
    const { bos, eos } = pack.manifest.tokenizer;
    for (let n = 0; n < 3; n++) {
      ids[n * L] = BigInt(bos);
      for (let k = 1; k <= n + 2; k++) ids[n * L + k] = BigInt(400 + 13 * k + n);
      ids[n * L + n + 3] = BigInt(eos);
    }
    const out = await runner.encodeTexts(ids, 3);
    expect(out.length).toBe(3 * E);
    for (let n = 0; n < 3; n++) {
      const row = out.subarray(n * E, (n + 1) * E);
      expect(Math.hypot(...row)).toBeCloseTo(1, 5);
    }
    expect(maxAbsDiff(out.subarray(0, E), out.subarray(E, 2 * E))).toBeGreaterThan(1e-3);
  });

  it('gives a short text the same embedding whether the batch holds a long text or not', async () => {
    const L = pack.manifest.dims.textContext;
    const { bos, eos } = pack.manifest.tokenizer;
    const row = (length: number, salt: number) => {
      const ids = new BigInt64Array(L);
      ids[0] = BigInt(bos);
      for (let k = 1; k < length - 1; k++) ids[k] = BigInt(300 + ((k * 37 + salt) % 4000));
      ids[length - 1] = BigInt(eos);
      return ids;
    };
    const short = row(6, 1);
    const long = row(L, 2);
    const both = new BigInt64Array(2 * L);
    both.set(short, 0);
    both.set(long, L);
    const together = await runner.encodeTexts(both, 2);
    const alone = await runner.encodeTexts(short, 1); // may run with a cut context
    expect(maxAbsDiff(alone, together.subarray(0, E))).toBeLessThan(1e-5);
  });

  it('rejects inputs of the wrong size before running', async () => {
    await expect(runner.encodeImages(new Float32Array(10), 1)).rejects.toThrow(/pixel_values: 10 values/);
  });
});
