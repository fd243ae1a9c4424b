/**
 * The metrics against values derived by hand from upstream's definitions (RAM++'s get_mAP /
 * get_PR): AP = Σ over positives in rank order of (positives so far / rank), divided by
 * (positives + 1e-8); P = TP / (TP + FP + 1e-9), R = TP / (TP + FN + 1e-9); every tag-list entry
 * is a column of its own and counts in the means.
 */
import { describe, expect, it } from 'vitest';
import { calibrateThresholds, thresholdBelow } from '../../src/eval/calibration.ts';
import { averagePrecision, buildTargets, meanAveragePrecision, precisionRecall, precisionRecallCurve, predictions, rankColumn } from '../../src/eval/metrics.ts';

const ap = (sum: number, positives: number) => sum / (positives + 1e-8);
const pr = (tp: number, other: number) => tp / (tp + other + 1e-9);

describe('average precision', () => {
  it('sums precision at each positive’s rank', () => {
    // ranks: 0.9 (+), 0.8 (−), 0.7 (+), 0.6 (−) → 1/1 and 2/3
    const scores = [0.9, 0.8, 0.7, 0.6];
    const targets = [1, 0, 1, 0];
    expect(averagePrecision(scores, targets, 4, 1, 0)).toBeCloseTo(ap(1 + 2 / 3, 2), 12);
    // the image order does not matter, only the scores
    expect(averagePrecision([0.6, 0.7, 0.8, 0.9], [0, 1, 0, 1], 4, 1, 0)).toBeCloseTo(ap(1 + 2 / 3, 2), 12);
  });

  it('ranks equal scores with the later image first (numpy’s argsort()[::-1] of this column is 2, 1, 0, 3)', () => {
    // images 0..2 tie at 0.5; ranked 2, 1, 0 then 3: the positives (0 and 3) sit at ranks 3 and 4
    const value = averagePrecision([0.5, 0.5, 0.5, 0.2], [1, 0, 0, 1], 4, 1, 0);
    expect(value).toBeCloseTo(ap(1 / 3 + 2 / 4, 2), 12);
    // the other tie order (earlier image first) would have given (1 + 2/4) / 2
    expect(value).not.toBeCloseTo(ap(1 + 2 / 4, 2), 6);
  });

  it('ranks engine probabilities (float32 in [0, 1]) the same way, ties included', () => {
    // float32 inputs take the sort-by-key path; the same hand-derived value as above
    expect(averagePrecision(Float32Array.of(0.5, 0.5, 0.5, 0.25), [1, 0, 0, 1], 4, 1, 0)).toBeCloseTo(ap(1 / 3 + 2 / 4, 2), 12);
    // and the same order as the definition's comparator on many ties, 0 and 1 included
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const n = 500;
    const k = 2;
    const scores = Float32Array.from({ length: n * k }, () => Math.round(rand() * 20) / 20);
    for (let c = 0; c < k; c++) {
      const expected = [...Array(n).keys()].sort((a, b) => scores[b * k + c]! - scores[a * k + c]! || b - a);
      expect([...rankColumn(scores, n, k, c)]).toEqual(expected);
    }
  });

  it('gives a tag without positives 0 and keeps it in the mean', () => {
    // two tags: the first perfect (AP 1), the second with no positive at all
    const scores = [0.9, 0.8, 0.1, 0.7];
    const targets = [1, 0, 0, 0];
    const { mAP, ap: aps } = meanAveragePrecision(scores, targets, 2, 2);
    expect(aps[0]).toBeCloseTo(ap(1, 1), 12);
    expect(aps[1]).toBe(0);
    expect(mAP).toBeCloseTo(ap(1, 1) / 2, 12);
  });
});

describe('a tag list with a duplicate entry', () => {
  // columns: cat, dog, cat again (two data-set classes mapped onto one tag), scored separately
  const taglist = ['cat', 'dog', 'cat'];
  const labels = [['cat'], ['dog'], []];
  const scores = [
    [0.9, 0.1, 0.2],
    [0.3, 0.8, 0.7],
    [0.6, 0.4, 0.1],
  ].flat();

  it('labels every column of the name', () => {
    expect([...buildTargets(taglist, labels)]).toEqual([1, 0, 1, 0, 1, 0, 0, 0, 0]);
  });

  it('averages AP over every column, the duplicate included', () => {
    const targets = buildTargets(taglist, labels);
    const { mAP, ap: aps } = meanAveragePrecision(scores, targets, 3, 3);
    // cat: image 0 ranks first → 1; dog: image 1 first → 1; cat again: image 0 ranks second → 1/2
    expect([...aps].map((x) => +x.toFixed(10))).toEqual([ap(1, 1), ap(1, 1), ap(1 / 2, 1)].map((x) => +x.toFixed(10)));
    expect(mAP).toBeCloseTo((ap(1, 1) * 2 + ap(1 / 2, 1)) / 3, 12);
  });

  it('predicts a name for all its columns when any of them passes', () => {
    const targets = buildTargets(taglist, labels);
    const predicted = predictions(scores, [0.5, 0.5, 0.5], taglist, 3);
    // cat passes in column 0 for images 0 and 2, in column 2 for image 1 → cat on every image
    expect([...predicted]).toEqual([1, 0, 1, 1, 1, 1, 1, 0, 1]);
    const r = precisionRecall(predicted, targets, 3, 3);
    // cat: TP 1 (image 0), FP 2; dog: TP 1, FP 0
    expect(r.precision[0]).toBeCloseTo(pr(1, 2), 12);
    expect(r.precision[2]).toBeCloseTo(pr(1, 2), 12);
    expect(r.precision[1]).toBeCloseTo(pr(1, 0), 12);
    expect(r.meanPrecision).toBeCloseTo((2 * pr(1, 2) + pr(1, 0)) / 3, 12);
    expect(r.meanRecall).toBeCloseTo(pr(1, 0), 12);
    // F1 from the same P and R: 2 · (1/3) · 1 / (1/3 + 1) = 1/2
    expect(r.f1[0]).toBeCloseTo(0.5, 8);
    expect([...r.positives]).toEqual([1, 1, 1]);
  });

  it('decides strictly above the threshold, as the engine does', () => {
    const predicted = predictions([0.5, 0.5000001], [0.5, 0.5], ['a', 'b'], 1);
    expect([...predicted]).toEqual([0, 1]);
  });

  it('refuses a label that is not in the tag list, naming it', () => {
    expect(() => buildTargets(taglist, [['cat', 'horse']])).toThrow(/not in the tag list: "horse"/);
  });
});

describe('precision–recall curve', () => {
  it('has one point per distinct score, equal scores together', () => {
    const curve = precisionRecallCurve([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0], 4, 1, 0);
    expect(curve).toEqual([
      { score: 0.9, precision: 1, recall: 0.5 },
      { score: 0.5, precision: 2 / 3, recall: 1 },
      { score: 0.1, precision: 2 / 4, recall: 1 },
    ]);
  });
});

describe('calibration', () => {
  // positives 0.9 0.85 0.8 0.75 0.4, negatives 0.7 0.3 0.2 0.1 0.05
  const pos = [0.9, 0.85, 0.8, 0.75, 0.4];
  const neg = [0.7, 0.3, 0.2, 0.1, 0.05];
  const scores = [...pos, ...neg];
  const targets = [...pos.map(() => 1), ...neg.map(() => 0)];
  const base = { taglist: ['t'], scores, targets, images: 10, thresholds: [0.5], minPositives: 1 };

  it('finds the F1-best cut: below 0.4 (P 5/6, R 1), between it and the next score down', () => {
    const { changes } = calibrateThresholds({ ...base, target: { kind: 'maxF1' } });
    expect(changes).toHaveLength(1);
    const c = changes[0]!;
    expect(c.new).toBeCloseTo(0.35, 6);
    expect(c.expected.precision).toBeCloseTo(5 / 6, 12);
    expect(c.expected.recall).toBe(1);
    // before: above 0.5 are 4 positives and 1 negative
    expect(c.before).toMatchObject({ precision: 4 / 5, recall: 4 / 5 });
  });

  it('finds the lowest threshold that reaches a target precision', () => {
    const { changes } = calibrateThresholds({ ...base, target: { kind: 'precision', precision: 1 } });
    // only the four top positives come before any negative
    expect(changes[0]!.new).toBeCloseTo(0.725, 6);
    expect(changes[0]!.expected).toMatchObject({ precision: 1, recall: 0.8 });
    const { kept } = calibrateThresholds({ ...base, scores: [...neg, ...pos], target: { kind: 'precision', precision: 1 } });
    // the same scores on the wrong images: a negative scores highest, precision 1 is out of reach
    expect(kept[0]).toMatchObject({ reason: 'precision-unreachable', threshold: 0.5 });
  });

  it('keeps the threshold of a tag with fewer positives than the minimum', () => {
    const { changes, kept } = calibrateThresholds({ ...base, minPositives: 6, target: { kind: 'maxF1' } });
    expect(changes).toEqual([]);
    expect(kept).toEqual([{ tag: 't', threshold: 0.5, positives: 5, reason: 'few-positives' }]);
  });

  it('matches an exhaustive search over thresholds on random scores', () => {
    // a seeded generator: positives score higher on average, with overlap
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const n = 300;
    const k = 3;
    const s = new Float32Array(n * k);
    const t = new Uint8Array(n * k);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < k; c++) {
        const positive = rand() < 0.2 + 0.2 * c;
        t[i * k + c] = positive ? 1 : 0;
        s[i * k + c] = Math.min(0.999, Math.max(0.001, (positive ? 0.55 : 0.35) + (rand() - 0.5) * 0.6));
      }
    }
    const f1At = (c: number, th: number) => {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      for (let i = 0; i < n; i++) {
        const p = s[i * k + c]! > th;
        if (p && t[i * k + c]) tp++;
        else if (p) fp++;
        else if (t[i * k + c]) fn++;
      }
      return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
    };
    const result = calibrateThresholds({ taglist: ['a', 'b', 'c'], scores: s, targets: t, images: n, thresholds: [0.5, 0.5, 0.5], target: { kind: 'maxF1' }, minPositives: 1 });
    expect(result.changes).toHaveLength(3);
    for (const [c, change] of result.changes.entries()) {
      // every threshold that can make a difference: each score itself (just above it nothing changes)
      let best = 0;
      for (let i = 0; i < n; i++) best = Math.max(best, f1At(c, s[i * k + c]!), f1At(c, 0));
      expect(f1At(c, change.new)).toBeCloseTo(best, 12);
      expect(change.expected.f1).toBeCloseTo(best, 12);
    }
  });

  it('puts a threshold strictly between two float32 neighbours', () => {
    const hi = Math.fround(0.5);
    const lo = Math.fround(0.5 - 2 ** -25); // the float32 just below 0.5
    const t = thresholdBelow(hi, lo);
    expect(hi > t && !(lo > t)).toBe(true);
  });
});
