/**
 * Tagging metrics as RAM++'s evaluation (`batch_inference.py` with `get_mAP` / `get_PR`)
 * defines them. Matrices are row-major [image][tag] over the data set's tag list, one column
 * per tag-list entry.
 *
 * - **Duplicate tag-list entries.** A data set's tag list may name one tag twice (several of its
 *   classes map onto one model tag; ImageNet-multi lists "missile" and "sunglasses" twice). Every
 *   column keeps its own AP and counts in the mean; an image labelled with the name is a positive
 *   of every column that carries the name, and a name predicted by any of its columns is
 *   predicted for all of them (upstream works on names there).
 * - **Tags without positives** have AP 0 (the sum over no positives, divided by 0 + 1e-8) and
 *   still count in the mean, as upstream; P and R are 0 for them.
 * - **Ties.** Upstream ranks a column with numpy's `argsort()[::-1]`, whose order among equal
 *   scores depends on numpy's sort kernel. Here equal scores rank the later image first: what
 *   numpy's insertion sort (short columns) and a stable sort give.
 */
import { badInput } from '../core/errors.ts';

/** Upstream's epsilons: AP divides by positives + 1e-8, P and R by their counts + 1e-9. */
export const AP_EPSILON = 1e-8;
export const PR_EPSILON = 1e-9;

/** Tag-list position(s) of each name (several when the list repeats it). */
export function columnsByName(taglist: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  taglist.forEach((tag, i) => {
    const list = out.get(tag);
    if (list) list.push(i);
    else out.set(tag, [i]);
  });
  return out;
}

/**
 * The 0/1 target matrix of `labels` (one list of tag names per image). A label missing from
 * the tag list is an error (upstream fails on it too), naming the first few.
 */
export function buildTargets(taglist: readonly string[], labels: readonly (readonly string[])[]): Uint8Array {
  const byName = columnsByName(taglist);
  const k = taglist.length;
  const targets = new Uint8Array(labels.length * k);
  const unknown = new Set<string>();
  labels.forEach((tags, i) => {
    for (const tag of tags) {
      const cols = byName.get(tag);
      if (!cols) unknown.add(tag);
      else for (const c of cols) targets[i * k + c] = 1;
    }
  });
  if (unknown.size > 0) {
    const names = [...unknown];
    throw badInput(`${names.length} label(s) are not in the tag list: ${names.slice(0, 10).map((n) => JSON.stringify(n)).join(', ')}${names.length > 10 ? ', …' : ''}`, { unknownTags: names.slice(0, 100) });
  }
  return targets;
}

/** The images of one column ranked best first; ties: the later image first. */
export function rankColumn(scores: ArrayLike<number>, n: number, k: number, col: number): Uint32Array {
  const order = new Uint32Array(n);
  if (n < 2 ** 22 && rankByKeys(scores, n, k, col, order)) return order;
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[b * k + col]! - scores[a * k + col]! || b - a);
  return order;
}

const bits = new DataView(new ArrayBuffer(4));

/**
 * The fast path for probabilities (float32 values in [0, 1], as the engine gives): each image
 * becomes one exact float64 key, its score's float32 bit pattern (which orders non-negative
 * floats) × 2^22 + its index (< 2^52 in all), sorted natively without a comparator; read from
 * the end, that is score descending and, among equal scores, the later image first. False (and
 * nothing ranked) when a score is not such a value.
 */
function rankByKeys(scores: ArrayLike<number>, n: number, k: number, col: number, order: Uint32Array): boolean {
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = scores[i * k + col]!;
    if (!(s >= 0 && s <= 1) || Math.fround(s) !== s) return false;
    bits.setFloat32(0, s);
    keys[i] = bits.getUint32(0) * 2 ** 22 + i;
  }
  keys.sort();
  for (let r = 0; r < n; r++) order[r] = keys[n - 1 - r]! % 2 ** 22;
  return true;
}

/**
 * Average precision of one column: the mean, over the positives in rank order, of the
 * precision at each positive's rank, divided by (positives + 1e-8).
 */
export function averagePrecision(scores: ArrayLike<number>, targets: ArrayLike<number>, n: number, k: number, col: number): number {
  const order = rankColumn(scores, n, k, col);
  let positives = 0;
  let sum = 0;
  for (let r = 0; r < n; r++) {
    if (targets[order[r]! * k + col] === 1) {
      positives++;
      sum += positives / (r + 1);
    }
  }
  return sum / (positives + AP_EPSILON);
}

export interface MeanAveragePrecision {
  /** Mean of `ap` over every column (duplicates and tags without positives included). */
  mAP: number;
  ap: Float64Array;
}

export function meanAveragePrecision(scores: ArrayLike<number>, targets: ArrayLike<number>, n: number, k: number): MeanAveragePrecision {
  checkShape(scores, targets, n, k);
  const ap = new Float64Array(k);
  let sum = 0;
  for (let c = 0; c < k; c++) {
    ap[c] = averagePrecision(scores, targets, n, k, c);
    sum += ap[c]!;
  }
  return { mAP: k > 0 ? sum / k : 0, ap };
}

export interface PrecisionRecall {
  /** Means over every column (upstream's CP and CR). */
  meanPrecision: number;
  meanRecall: number;
  precision: Float64Array;
  recall: Float64Array;
  /** 2PR/(P+R) from the same P and R; 0 where both are 0. */
  f1: Float64Array;
  truePositives: Uint32Array;
  falsePositives: Uint32Array;
  falseNegatives: Uint32Array;
  /** Labelled positives per column. */
  positives: Uint32Array;
}

/**
 * The decision at given thresholds: a column passes when its score is above its threshold
 * (strictly, as the engine decides), and a name passes for every column that carries it when
 * any of them does.
 */
export function predictions(scores: ArrayLike<number>, thresholds: ArrayLike<number>, taglist: readonly string[], n: number): Uint8Array {
  const k = taglist.length;
  const byName = [...columnsByName(taglist).values()];
  const out = new Uint8Array(n * k);
  for (let i = 0; i < n; i++) {
    for (const cols of byName) {
      if (cols.some((c) => scores[i * k + c]! > thresholds[c]!)) for (const c of cols) out[i * k + c] = 1;
    }
  }
  return out;
}

/** Per-column precision and recall of 0/1 predictions against 0/1 targets, and their means. */
export function precisionRecall(predicted: ArrayLike<number>, targets: ArrayLike<number>, n: number, k: number): PrecisionRecall {
  checkShape(predicted, targets, n, k);
  const tp = new Uint32Array(k);
  const fp = new Uint32Array(k);
  const fn = new Uint32Array(k);
  const positives = new Uint32Array(k);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      const p = predicted[i * k + c] === 1;
      const t = targets[i * k + c] === 1;
      if (t) positives[c]!++;
      if (p && t) tp[c]!++;
      else if (p) fp[c]!++;
      else if (t) fn[c]!++;
    }
  }
  const precision = new Float64Array(k);
  const recall = new Float64Array(k);
  const f1 = new Float64Array(k);
  let sumP = 0;
  let sumR = 0;
  for (let c = 0; c < k; c++) {
    precision[c] = tp[c]! / (tp[c]! + fp[c]! + PR_EPSILON);
    recall[c] = tp[c]! / (tp[c]! + fn[c]! + PR_EPSILON);
    f1[c] = f1Score(precision[c]!, recall[c]!);
    sumP += precision[c]!;
    sumR += recall[c]!;
  }
  return { meanPrecision: k > 0 ? sumP / k : 0, meanRecall: k > 0 ? sumR / k : 0, precision, recall, f1, truePositives: tp, falsePositives: fp, falseNegatives: fn, positives };
}

export const f1Score = (p: number, r: number) => (p + r > 0 ? (2 * p * r) / (p + r) : 0);

export interface CurvePoint {
  /** The lowest score still predicted at this point (a threshold just below it). */
  score: number;
  precision: number;
  recall: number;
}

/**
 * The precision–recall curve of one column: one point per distinct score, from the highest
 * down (equal scores enter together, as any threshold takes them together).
 */
export function precisionRecallCurve(scores: ArrayLike<number>, targets: ArrayLike<number>, n: number, k: number, col: number): CurvePoint[] {
  const order = rankColumn(scores, n, k, col);
  let positives = 0;
  for (let i = 0; i < n; i++) if (targets[i * k + col] === 1) positives++;
  const out: CurvePoint[] = [];
  let tp = 0;
  let taken = 0;
  for (let r = 0; r < n; ) {
    const s = scores[order[r]! * k + col]!;
    while (r < n && scores[order[r]! * k + col] === s) {
      if (targets[order[r]! * k + col] === 1) tp++;
      taken++;
      r++;
    }
    out.push({ score: s, precision: tp / taken, recall: positives > 0 ? tp / positives : 0 });
  }
  return out;
}

function checkShape(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number): void {
  if (a.length !== n * k || b.length !== n * k) throw badInput(`matrices of ${a.length} and ${b.length} values for ${n} images × ${k} tags`);
}
