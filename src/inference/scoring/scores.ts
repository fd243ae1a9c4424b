import { segmentRowCount, type LabelBank } from './label-bank.ts';

/** One image scored against one label bank. Index i is tag i of the bank. */
export interface TagScores {
  readonly bankKey: string;
  readonly tagCount: number;
  /** Decoder output before the sigmoid. [C] */
  readonly logits: Float32Array;
  /** sigmoid(logit). [C] */
  readonly probabilities: Float32Array;
  /** The bank's thresholds. [C] */
  readonly thresholds: Float32Array;
  /** 1 where probability > threshold (strict, as upstream). [C] */
  readonly passed: Uint8Array;
  /** The re-weighting softmax over each tag's descriptions, when asked for (see `descriptionWeights`). */
  readonly explained?: Explained;
}

/** Per segment of the bank, its [C_s, D_s] weights for this image (absent for segments not decoded). */
interface Explained {
  readonly bank: LabelBank;
  readonly weights: readonly (Float32Array | undefined)[];
}

export interface RankedTag {
  index: number;
  logit: number;
  probability: number;
  threshold: number;
  passed: boolean;
}

/** Scores of one image: `logits` in bank order, `weights` per segment when explained. */
export function makeTagScores(bank: LabelBank, logits: Float32Array, weights?: readonly (Float32Array | undefined)[]): TagScores {
  const C = bank.tagCount;
  const probabilities = new Float32Array(C);
  const passed = new Uint8Array(C);
  for (let c = 0; c < C; c++) {
    probabilities[c] = 1 / (1 + Math.exp(-logits[c]!));
    // both sides float32, like upstream's sigmoid(logits) > class_threshold
    passed[c] = probabilities[c]! > bank.thresholds[c]! ? 1 : 0;
  }
  return {
    bankKey: bank.key,
    tagCount: C,
    logits,
    probabilities,
    thresholds: bank.thresholds,
    passed,
    ...(weights ? { explained: { bank, weights } } : {}),
  };
}

export interface RankOptions {
  /** One threshold for every tag instead of each tag's own (the same strict comparison). */
  threshold?: number;
  /** Keep only tags above their threshold. */
  passedOnly?: boolean;
  /** Keep only tags with probability ≥ minScore. */
  minScore?: number;
  /** Keep the best k (after the filters). */
  topK?: number;
}

/** Tags by probability, best first (ties by index, so results are stable). */
export function rankTags(scores: TagScores, options: RankOptions = {}): RankedTag[] {
  const out: RankedTag[] = [];
  for (let c = 0; c < scores.tagCount; c++) {
    const probability = scores.probabilities[c]!;
    // Upstream RAM++'s strict comparison, as makeTagScores does with each tag's own threshold.
    const passed = options.threshold !== undefined ? probability > options.threshold : scores.passed[c] === 1;
    if (options.passedOnly && !passed) continue;
    if (options.minScore !== undefined && probability < options.minScore) continue;
    out.push({ index: c, logit: scores.logits[c]!, probability, threshold: options.threshold ?? scores.thresholds[c]!, passed });
  }
  out.sort((a, b) => b.probability - a.probability || a.index - b.index);
  return options.topK !== undefined ? out.slice(0, Math.max(0, options.topK)) : out;
}

/** The tags that passed their thresholds, best first. */
export const passedTags = (scores: TagScores, topK?: number) => rankTags(scores, { passedOnly: true, topK });

export interface DescriptionWeight {
  /** Index of the description within its tag (as given to the bank builder). */
  description: number;
  weight: number;
}

/**
 * The weights the image gave tag `tagIndex`'s real descriptions, in description order (a view).
 * Needs scores made with `explain`.
 */
export function descriptionWeights(scores: TagScores, tagIndex: number): Float32Array {
  const x = scores.explained;
  if (!x) throw new Error('descriptionWeights needs scores computed with explain: true');
  if (!(tagIndex >= 0 && tagIndex < scores.tagCount)) throw new RangeError(`tag index ${tagIndex} out of range`);
  const segment = x.bank.segments[x.bank.segmentOf[tagIndex]!]!;
  const row = x.bank.rowOf[tagIndex]!;
  const D = segment.maxDescriptions;
  return x.weights[x.bank.segmentOf[tagIndex]!]!.subarray(row * D, row * D + segmentRowCount(segment, row));
}

/** Why a tag scored as it did: its descriptions ordered by the weight the image gave them. */
export function topDescriptions(scores: TagScores, tagIndex: number, limit = 3): DescriptionWeight[] {
  const weights = descriptionWeights(scores, tagIndex);
  const out = Array.from(weights, (weight, description) => ({ description, weight }));
  out.sort((a, b) => b.weight - a.weight || a.description - b.description);
  return out.slice(0, Math.max(0, limit));
}
