import { describe, expect, it } from 'vitest';
import { float16ToFloat32 } from '../../src/inference/pack/float16.ts';
import { asSharedBank, assertValidBank, buildLabelBank, descriptionCount, LabelBankBuilder } from '../../src/inference/scoring/label-bank.ts';
import { makeTagScores, passedTags, rankTags, topDescriptions } from '../../src/inference/scoring/scores.ts';

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
    expect([bank.tagCount, bank.maxDescriptions, bank.embedDim]).toEqual([2, 3, 2]);
    expect(Array.from(bank.embeds)).toEqual([1, 0, 0, 1, 0.6000000238418579, 0.800000011920929, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(bank.mask)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(bank.thresholds[1]).toBeCloseTo(0.7, 6);
    expect(bank.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(bank.mask.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([descriptionCount(bank, 0), descriptionCount(bank, 1)]).toEqual([3, 1]);
    expect(() => assertValidBank(bank, 2)).not.toThrow();
    expect(() => assertValidBank(bank, 3)).toThrow(/embedDim 2 does not match the model's 3/);
  });

  it('rejects tags without descriptions, with too many, of the wrong width or non-finite', () => {
    const tag = (descriptions: Float32Array | Float32Array[], threshold = 0.5) => ({ descriptions, threshold });
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag([])] })).toThrow(/no descriptions/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag(unit(1, 0, 0))] })).toThrow(/not a multiple of 2/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag([unit(1, 0, 0)])] })).toThrow(/3 values, expected 2/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag(unit(NaN, 0))] })).toThrow(/non-finite/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [tag(unit(1, 0), 1.5)] })).toThrow(/threshold/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, maxDescriptions: 1, tags: [tag(unit(1, 0, 0, 1))] })).toThrow(/more than maxDescriptions 1/);
    expect(() => new LabelBankBuilder('k', 2, 1, 2).setTag(0, unit(1, 0), 0.5).build()).toThrow(/tag 1 was never set/);
    expect(() => buildLabelBank({ key: 'k', embedDim: 2, tags: [] })).toThrow(/at least one tag/);
  });

  it('clears what an earlier setTag left when a tag is set again', () => {
    const bank = new LabelBankBuilder('k', 1, 2, 1).setTag(0, unit(5, 6), 0.5).setTag(0, unit(7), 0.5).build();
    expect(Array.from(bank.embeds)).toEqual([7, 0]);
    expect(Array.from(bank.mask)).toEqual([1, 0]);
  });

  it('moves a plain-array bank into shared memory once', () => {
    const shared = buildLabelBank({ key: 'k', embedDim: 1, tags: [{ descriptions: unit(1), threshold: 0.5 }] });
    const plain = { ...shared, embeds: shared.embeds.slice(), mask: shared.mask.slice() };
    const a = asSharedBank(plain);
    expect(a.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(asSharedBank(plain).embeds).toBe(a.embeds);
    expect(asSharedBank(shared)).toBe(shared);
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
    const scores = makeTagScores(bank, Float32Array.from([0, 0, 0]), weights);
    expect(topDescriptions(scores, 0, 2)).toEqual([
      { description: 1, weight: 0.5 },
      { description: 2, weight: expect.closeTo(0.3, 6) },
    ]);
    expect(topDescriptions(scores, 1)).toEqual([{ description: 0, weight: 1 }]); // padding is not listed
    expect(() => topDescriptions(makeTagScores(bank, Float32Array.from([0, 0, 0])), 0)).toThrow(/explain/);
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
});
