import { describe, expect, it } from 'vitest';
import { float16ToFloat32, float32ToFloat16 } from '../../src/inference/pack/float16.ts';
import {
  asSharedSegment,
  assertValidBank,
  assertValidSegment,
  buildLabelBank,
  buildSegment,
  composeLabelBank,
  descriptionCount,
  SegmentBuilder,
  segmentBytes,
  segmentRowEmbeddings,
  tagEmbeddings,
} from '../../src/inference/scoring/label-bank.ts';
import { descriptionWeights, makeTagScores, passedTags, rankTags, topDescriptions } from '../../src/inference/scoring/scores.ts';
import { maxAbsDiff, seededRandom } from './helpers.ts';

const unit = (...v: number[]) => Float32Array.from(v);

describe('label bank builder', () => {
  it('packs ragged description lists with zero padding and a mask', () => {
    const bank = buildLabelBank({
      key: 'k1',
      embedDim: 2,
      tags: [
        { descriptions: [unit(1, 0), unit(0, 1), unit(0.6, 0.8)], threshold: 0.5 },
        { descriptions: unit(0, 1), threshold: 0.7 },
      ],
    });
    expect([bank.tagCount, bank.embedDim, bank.segments.length]).toEqual([2, 2, 1]);
    const segment = bank.segments[0]!;
    expect([segment.key, segment.tagCount, segment.maxDescriptions, segment.embedDim, segment.precision]).toEqual(['k1', 2, 3, 2, 'float32']);
    expect(Array.from(segment.embeds)).toEqual([1, 0, 0, 1, 0.6000000238418579, 0.800000011920929, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(segment.mask)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(Array.from(bank.segmentOf)).toEqual([0, 0]);
    expect(Array.from(bank.rowOf)).toEqual([0, 1]);
    expect(bank.thresholds[1]).toBeCloseTo(0.7, 6);
    expect(segment.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(segment.mask.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([descriptionCount(bank, 0), descriptionCount(bank, 1)]).toEqual([3, 1]);
    expect(Array.from(tagEmbeddings(bank, 1))).toEqual([0, 1]);
    expect(tagEmbeddings(bank, 0).buffer).toBe(segment.embeds.buffer); // a view, not a copy
    expect(segmentBytes(segment)).toBe(12 * 4 + 6);
    expect(() => assertValidBank(bank, 2)).not.toThrow();
    expect(() => assertValidSegment(segment, 2)).not.toThrow();
    expect(() => assertValidBank(bank, 3)).toThrow(/embedDim 2 does not match the model's 3/);
    expect(() => assertValidSegment(segment, 3)).toThrow(/embedDim 2 does not match the model's 3/);
  });

  it('rejects tags without descriptions, with too many, of the wrong width or non-finite', () => {
    const tag = (descriptions: Float32Array | Float32Array[], threshold = 0.5) => ({ descriptions, threshold });
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag([])] })).toThrow(/no descriptions/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag(unit(1, 0, 0))] })).toThrow(/not a multiple of 2/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag([unit(1, 0, 0)])] })).toThrow(/3 values, expected 2/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag(unit(NaN, 0))] })).toThrow(/non-finite/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, precision: 'float16', tags: [tag(unit(Infinity, 0))] })).toThrow(/non-finite/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag(unit(1, 0), 1.5)] })).toThrow(/threshold/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, maxDescriptions: 1, tags: [tag(unit(1, 0, 0, 1))] })).toThrow(/more than maxDescriptions 1/);
    expect(() => new SegmentBuilder('k', 2, 1, 2).setTag(0, unit(1, 0)).build()).toThrow(/tag 1 was never set/);
    expect(() => new SegmentBuilder('k', 2, 1, 2).setTag(2, unit(1, 0))).toThrow(/tag index 2 out of range/);
    expect(() => new SegmentBuilder('k', 0, 1, 2)).toThrow(/tagCount must be a positive integer/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [] })).toThrow(/at least one tag/);
    expect(() => buildSegment({ key: 'k', embedDim: 2, tags: [] })).toThrow(/at least one tag/);
  });

  it('clears what an earlier setTag left when a tag is set again', () => {
    const segment = new SegmentBuilder('k', 1, 2, 1).setTag(0, unit(5, 6)).setTag(0, unit(7)).build();
    expect(Array.from(segment.embeds)).toEqual([7, 0]);
    expect(Array.from(segment.mask)).toEqual([1, 0]);
    const half = new SegmentBuilder('k', 1, 2, 1, 'float16').setTag(0, unit(5, 6)).setTag(0, unit(7)).build();
    expect(Array.from(half.embeds)).toEqual([0x4700, 0]);
    expect(Array.from(half.mask)).toEqual([1, 0]);
  });

  it('stores a float16 segment as half bit patterns in shared memory and reads it back as float32', () => {
    const values = [unit(1, -2), unit(1 / 3, 65504), unit(0.1, 1e-8)];
    const segment = new SegmentBuilder('half', 2, 2, 2, 'float16').setTag(0, values.slice(0, 2)).setTag(1, values[2]!).build();
    expect(segment.precision).toBe('float16');
    expect(segment.embeds).toBeInstanceOf(Uint16Array);
    expect(segment.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(segment.mask.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(segmentBytes(segment)).toBe(8 * 2 + 4);
    expect(Array.from(segment.embeds)).toEqual([0x3c00, 0xc000, 0x3555, 0x7bff, 0x2e66, 0x0000, 0, 0]);
    expect(Array.from(segment.mask)).toEqual([1, 1, 1, 0]);
    expect(() => assertValidSegment(segment, 2)).not.toThrow();
    // rows widen to float32, padding not included
    expect(Array.from(segmentRowEmbeddings(segment, 0))).toEqual([1, -2, float16ToFloat32(Uint16Array.of(0x3555))[0], 65504]);
    expect(Array.from(segmentRowEmbeddings(segment, 1))).toEqual([float16ToFloat32(Uint16Array.of(0x2e66))[0], 0]);
    expect(segmentRowEmbeddings(segment, 1).buffer).not.toBe(segment.embeds.buffer);

    const bank = buildLabelBank({ key: 'b', embedDim: 2, precision: 'float16', tags: [{ descriptions: values, threshold: 0.25 }] });
    expect(bank.segments[0]!.precision).toBe('float16');
    expect(bank.segments[0]!.embeds).toBeInstanceOf(Uint16Array);
    const flat = Float32Array.from(values.flatMap((v) => Array.from(v)));
    expect(Array.from(tagEmbeddings(bank, 0))).toEqual(Array.from(float16ToFloat32(float32ToFloat16(flat))));
    expect(maxAbsDiff(tagEmbeddings(bank, 0), flat)).toBeLessThan(1e-4); // 1/3 and 0.1 are not halves
    expect(maxAbsDiff(tagEmbeddings(bank, 0), flat)).toBeGreaterThan(0);
  });

  it('moves a plain-array segment into shared memory once and remembers the copy', () => {
    for (const precision of ['float32', 'float16'] as const) {
      const shared = buildSegment({ key: 'k', embedDim: 2, precision, tags: [unit(1, 0), [unit(0, 1), unit(0.5, 0.5)]] });
      const plain = { ...shared, embeds: shared.embeds.slice(), mask: shared.mask.slice() };
      expect(plain.embeds.buffer).not.toBeInstanceOf(SharedArrayBuffer);
      const a = asSharedSegment(plain);
      expect(a).not.toBe(plain);
      expect(a.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(a.mask.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(a.embeds).toBeInstanceOf(precision === 'float16' ? Uint16Array : Float32Array);
      expect(Array.from(a.embeds)).toEqual(Array.from(shared.embeds));
      expect(Array.from(a.mask)).toEqual(Array.from(shared.mask));
      expect([a.key, a.tagCount, a.maxDescriptions, a.embedDim, a.precision]).toEqual(['k', 2, 2, 2, precision]);
      expect(Object.isFrozen(a)).toBe(true);
      // the copy is made once: the same object (and arrays) the second time
      expect(asSharedSegment(plain)).toBe(a);
      expect(asSharedSegment(plain).embeds).toBe(a.embeds);
      // a segment already in shared memory is its own shared form
      expect(asSharedSegment(shared)).toBe(shared);
      expect(asSharedSegment(a)).toBe(a);
      // the copy is a copy: later writes to the plain arrays do not reach it
      plain.embeds[0] = 0;
      expect(asSharedSegment(plain).embeds[0]).toBe(shared.embeds[0]);
    }
  });
});

describe('composed banks', () => {
  const segA = buildSegment({ key: 'A', embedDim: 2, tags: [unit(1, 0), [unit(0, 1), unit(0.6, 0.8)], unit(0.8, 0.6)] });
  const segB = buildSegment({ key: 'B', embedDim: 2, tags: [[unit(-1, 0), unit(0, -1), unit(1, 0)], unit(0, 1)] });
  const tags = (segmentOf: number[], rowOf: number[], thresholds: number[]) => ({
    segmentOf: Uint16Array.from(segmentOf),
    rowOf: Uint32Array.from(rowOf),
    thresholds: Float32Array.from(thresholds),
  });

  it('maps each tag to a row of a segment, in the caller\'s order', () => {
    const bank = composeLabelBank({ key: 'ab', segments: [segA, segB], tags: tags([1, 0, 1, 0], [0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4]) });
    expect([bank.key, bank.tagCount, bank.embedDim]).toEqual(['ab', 4, 2]);
    expect(bank.segments).toEqual([segA, segB]);
    expect(Object.isFrozen(bank)).toBe(true);
    expect([0, 1, 2, 3].map((i) => descriptionCount(bank, i))).toEqual([3, 2, 1, 1]);
    expect(Array.from(tagEmbeddings(bank, 0))).toEqual([-1, 0, 0, -1, 1, 0]);
    expect(Array.from(tagEmbeddings(bank, 1))).toEqual(Array.from(Float32Array.of(0, 1, 0.6, 0.8)));
    expect(Array.from(tagEmbeddings(bank, 2))).toEqual([0, 1]);
    expect(Array.from(tagEmbeddings(bank, 3))).toEqual([1, 0]);
    expect(() => assertValidBank(bank, 2)).not.toThrow();
    // a segment may be pointed at by no tag, and a row by several
    const sparse = composeLabelBank({ key: 'b-only', segments: [segA, segB], tags: tags([1, 1], [1, 1], [0.5, 0.6]) });
    expect(sparse.tagCount).toBe(2);
  });

  it('rejects maps that point outside their segments, differ in length, or carry bad thresholds', () => {
    const compose = (t: ReturnType<typeof tags>, segments = [segA, segB], key = 'bad') => () => composeLabelBank({ key, segments, tags: t });
    expect(compose(tags([0, 2], [0, 0], [0.5, 0.5]))).toThrow(/tag 1 points at segment 2, of 2/);
    expect(compose(tags([0, 1], [3, 2], [0.5, 0.5]))).toThrow(/tag 0 points at row 3 of a 3-tag segment/);
    expect(compose(tags([0, 1], [0, 2], [0.5, 0.5]))).toThrow(/tag 1 points at row 2 of a 2-tag segment/);
    expect(compose(tags([0, 1, 0], [0, 0], [0.5, 0.5]))).toThrow(/differ in length/);
    expect(compose(tags([0, 1], [0, 0, 0], [0.5, 0.5]))).toThrow(/differ in length/);
    expect(compose(tags([0], [0], [0.5, 0.5]))).toThrow(/differ in length/);
    for (const bad of [-0.01, 1.01, NaN, Infinity]) {
      expect(compose(tags([0, 1], [0, 0], [0.5, bad]))).toThrow(/tag 1: threshold .* is not in \[0, 1\]/);
    }
    expect(compose(tags([0, 1], [0, 0], [0, 1]))).not.toThrow(); // the bounds themselves are fine
    const wide = buildSegment({ key: 'W', embedDim: 3, tags: [unit(1, 0, 0)] });
    expect(compose(tags([0], [0], [0.5]), [segA, wide])).toThrow(/segments differ in embedDim/);
    expect(compose(tags([0], [0], [0.5]), [])).toThrow(/at least one segment/);
    expect(compose(tags([], [], []))).toThrow(/at least one tag/);
    expect(compose(tags([0], [0], [0.5]), [segA], '')).toThrow(/key is empty/);
    // a bank made by hand is checked the same way by assertValidBank
    const forged = { ...composeLabelBank({ key: 'ok', segments: [segA], tags: tags([0], [0], [0.5]) }), rowOf: Uint32Array.of(7) };
    expect(() => assertValidBank(forged, 2)).toThrow(/row 7 of a 3-tag segment/);
  });

  it('rejects segments whose mask has padding before a description, or whose arrays do not fit', () => {
    const base = { key: 's', tagCount: 2, maxDescriptions: 3, embedDim: 1, precision: 'float32' as const, embeds: new Float32Array(6) };
    expect(() => assertValidSegment({ ...base, mask: Uint8Array.of(1, 1, 0, 1, 0, 0) }, 1)).not.toThrow();
    expect(() => assertValidSegment({ ...base, mask: Uint8Array.of(1, 1, 1, 1, 0, 1) }, 1)).toThrow(/tag 1 has padding before a description/);
    expect(() => assertValidSegment({ ...base, mask: Uint8Array.of(1, 0, 1, 1, 0, 0) }, 1)).toThrow(/tag 0 has padding before a description/);
    expect(() => assertValidSegment({ ...base, mask: Uint8Array.of(1, 0, 0, 0, 1, 1) }, 1)).toThrow(/tag 1 has no descriptions/);
    expect(() => assertValidSegment({ ...base, mask: Uint8Array.of(1, 0, 0, 1, 0) }, 1)).toThrow(/array sizes/);
    expect(() => assertValidSegment({ ...base, embeds: new Float32Array(5), mask: Uint8Array.of(1, 0, 0, 1, 0, 0) }, 1)).toThrow(/array sizes/);
    expect(() => assertValidSegment({ ...base, precision: 'float16', mask: Uint8Array.of(1, 0, 0, 1, 0, 0) }, 1)).toThrow(/do not match precision float16/);
    expect(() => assertValidSegment({ ...base, embeds: new Uint16Array(6), mask: Uint8Array.of(1, 0, 0, 1, 0, 0) }, 1)).toThrow(/do not match precision float32/);
    expect(() => assertValidSegment({ ...base, key: '', mask: Uint8Array.of(1, 0, 0, 1, 0, 0) }, 1)).toThrow(/key is empty/);
  });
});

describe('tag scores', () => {
  const bank = buildLabelBank({
    key: 'scores',
    embedDim: 1,
    tags: [
      { descriptions: [unit(1), unit(1), unit(1)], threshold: 0.5 },
      { descriptions: unit(1), threshold: 0.5 },
      { descriptions: unit(1), threshold: 0.9 },
    ],
  });

  it('applies sigmoid, and thresholds strictly', () => {
    const scores = makeTagScores(bank, Float32Array.from([2, 0, 3]));
    expect(scores.probabilities[0]).toBeCloseTo(1 / (1 + Math.exp(-2)), 6);
    expect(scores.probabilities[1]).toBe(0.5);
    expect(Array.from(scores.passed)).toEqual([1, 0, 1]); // 0.5 > 0.5 is false
    expect(passedTags(scores).map((t) => t.index)).toEqual([2, 0]);
  });

  it('ranks with topK and minScore, ties by index', () => {
    const scores = makeTagScores(bank, Float32Array.from([1, 1, -1]));
    expect(rankTags(scores).map((t) => t.index)).toEqual([0, 1, 2]);
    expect(rankTags(scores, { topK: 1 }).map((t) => t.index)).toEqual([0]);
    expect(rankTags(scores, { minScore: 0.5 }).map((t) => t.index)).toEqual([0, 1]);
    expect(rankTags(scores, { passedOnly: true, topK: 5 })).toHaveLength(2);
  });

  it('applies one threshold override to every tag, strictly', () => {
    const scores = makeTagScores(bank, Float32Array.from([2, 0, 3])); // 0.88, 0.5, 0.95
    expect(rankTags(scores, { threshold: 0.9, passedOnly: true }).map((t) => [t.index, t.threshold])).toEqual([[2, 0.9]]);
    expect(rankTags(scores, { threshold: 0.5 }).map((t) => t.passed)).toEqual([true, true, false]); // 0.5 > 0.5 is false
  });

  it('explains a tag by its real descriptions, heaviest first', () => {
    const weights = Float32Array.from([0.2, 0.5, 0.3, 1, 0, 0, 1, 0, 0]);
    const scores = makeTagScores(bank, Float32Array.from([0, 0, 0]), [weights]);
    expect(Array.from(descriptionWeights(scores, 0))).toEqual(Array.from(weights.subarray(0, 3)));
    expect(Array.from(descriptionWeights(scores, 2))).toEqual([1]);
    expect(() => descriptionWeights(scores, 3)).toThrow(RangeError);
    expect(() => descriptionWeights(scores, -1)).toThrow(RangeError);
    expect(topDescriptions(scores, 0, 2)).toEqual([
      { description: 1, weight: 0.5 },
      { description: 2, weight: expect.closeTo(0.3, 6) },
    ]);
    expect(topDescriptions(scores, 1)).toEqual([{ description: 0, weight: 1 }]); // padding is not listed
    expect(() => topDescriptions(makeTagScores(bank, Float32Array.from([0, 0, 0])), 0)).toThrow(/explain/);
  });
});

describe('tag scores of a composed bank', () => {
  it('finds each tag\'s weights in its own segment\'s rows', () => {
    const segA = buildSegment({ key: 'A', embedDim: 1, tags: [[unit(1), unit(1)], unit(1)] }); // D = 2
    const segB = buildSegment({ key: 'B', embedDim: 1, tags: [unit(1), [unit(1), unit(1), unit(1)]] }); // D = 3
    const bank = composeLabelBank({
      key: 'ab',
      segments: [segA, segB],
      tags: { segmentOf: Uint16Array.of(1, 0, 1, 0), rowOf: Uint32Array.of(1, 0, 0, 1), thresholds: Float32Array.of(0.5, 0.5, 0.5, 0.9) },
    });
    const weightsA = Float32Array.of(0.25, 0.75, 1, 0);
    const weightsB = Float32Array.of(1, 0, 0, 0.5, 0.3, 0.2);
    const scores = makeTagScores(bank, Float32Array.of(0, 1, 2, 3), [weightsA, weightsB]);
    expect(scores.tagCount).toBe(4);
    expect(scores.bankKey).toBe('ab');
    expect(Array.from(scores.thresholds)).toEqual(Array.from(bank.thresholds));
    expect(Array.from(scores.passed)).toEqual([0, 1, 1, 1]);
    expect(Array.from(descriptionWeights(scores, 0))).toEqual(Array.from(weightsB.subarray(3, 6)));
    expect(Array.from(descriptionWeights(scores, 1))).toEqual([0.25, 0.75]);
    expect(Array.from(descriptionWeights(scores, 2))).toEqual([1]);
    expect(Array.from(descriptionWeights(scores, 3))).toEqual([1]);
    expect(topDescriptions(scores, 0, 2).map((d) => d.description)).toEqual([0, 1]);
  });
});

describe('float16 conversion', () => {
  it('decodes normal, subnormal, zero, infinite and NaN halves', () => {
    const halves = Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555]);
    const out = float16ToFloat32(halves);
    expect(Array.from(out.subarray(0, 5))).toEqual([1, -2, 65504, 2 ** -24, 1023 * 2 ** -24]);
    expect(Object.is(out[5], 0)).toBe(true);
    expect(Object.is(out[6], -0)).toBe(true);
    expect([out[7], out[8]]).toEqual([Infinity, -Infinity]);
    expect(Number.isNaN(out[9]!)).toBe(true);
    expect(out[10]).toBeCloseTo(0.33325195, 8);
  });

  const half = (...v: number[]) => Array.from(float32ToFloat16(Float32Array.from(v)));

  it('encodes known values to their half bit patterns', () => {
    expect(half(1, -2, 65504, 0.5, 2 ** -14, 2 ** -24, 1 / 3, 0.1)).toEqual([0x3c00, 0xc000, 0x7bff, 0x3800, 0x0400, 0x0001, 0x3555, 0x2e66]);
    expect(half(0, -0)).toEqual([0x0000, 0x8000]);
    // too small for a half: zero of the same sign; small enough for a subnormal: a subnormal
    expect(half(1e-8, -1e-8, 2 ** -26)).toEqual([0x0000, 0x8000, 0x0000]);
    expect(half(1e-7, 1023 * 2 ** -24, -3 * 2 ** -24)).toEqual([0x0002, 0x03ff, 0x8003]);
    // beyond the largest half: infinity (65520 is the first value that rounds up to it)
    expect(half(70000, -70000, 65519, 65520, 1e30, Infinity, -Infinity)).toEqual([0x7c00, 0xfc00, 0x7bff, 0x7c00, 0x7c00, 0x7c00, 0xfc00]);
    for (const h of half(NaN, -NaN)) {
      expect(h & 0x7c00).toBe(0x7c00);
      expect(h & 0x3ff).not.toBe(0);
    }
    expect(Number.isNaN(float16ToFloat32(float32ToFloat16(Float32Array.of(NaN)))[0])).toBe(true);
  });

  it('rounds to nearest, ties to even, carrying into the exponent', () => {
    // normal halves: a spacing of 2^-10 at 1, of 2 at 2048
    expect(half(1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -11 - 2 ** -20)).toEqual([0x3c00, 0x3c02, 0x3c01, 0x3c00]);
    expect(half(2049, 2051, -2049, -2051)).toEqual([0x6800, 0x6802, 0xe800, 0xe802]);
    expect(half(2 - 2 ** -12, 2 - 2 ** -11)).toEqual([0x4000, 0x4000]); // 0x3fff + 1 carries into the exponent
    // subnormal halves: a spacing of 2^-24
    expect(half(2 ** -25, 3 * 2 ** -25, 5 * 2 ** -25, 2 ** -25 + 2 ** -40)).toEqual([0x0000, 0x0002, 0x0002, 0x0001]);
    expect(half(1023.5 * 2 ** -24, 1022.5 * 2 ** -24)).toEqual([0x0400, 0x03fe]); // the largest subnormal rounds up to the smallest normal
  });

  it('round-trips every half bit pattern except NaNs', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(all));
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (!nan && back[h] !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  it('picks the nearest half for random float32 values of every magnitude', () => {
    const rand = seededRandom(16);
    const n = 20_000;
    const values = Float32Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * 2 ** (rand() * 44 - 28) * (1 + rand()));
    const bits = float32ToFloat16(values);
    const widened = float16ToFloat32(bits);
    for (let i = 0; i < n; i++) {
      const x = values[i]!;
      const h = bits[i]!;
      expect(h & 0x8000, `sign of ${x}`).toBe(x < 0 ? 0x8000 : 0);
      const magnitude = h & 0x7fff;
      if (magnitude === 0x7c00) {
        expect(Math.abs(x)).toBeGreaterThanOrEqual(65520);
        continue;
      }
      // no neighbouring half is nearer (on a tie, the even one was chosen)
      const err = Math.abs(widened[i]! - x);
      for (const neighbour of [magnitude - 1, magnitude + 1]) {
        if (neighbour < 0 || neighbour >= 0x7c00) continue;
        const other = Math.abs(Math.abs(float16ToFloat32(Uint16Array.of(neighbour))[0]!) - Math.abs(x));
        if (other === err) expect(magnitude & 1, `tie at ${x}`).toBe(0);
        else expect(err, `${x} → 0x${h.toString(16)}`).toBeLessThan(other);
      }
    }
  });
});
