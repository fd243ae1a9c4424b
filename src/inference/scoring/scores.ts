import type { LabelBank } from './label-bank.ts';

/** One image scored against one label bank. Index i is tag i of the bank. */
export interface TagScores {
  readonly bankKey: string;
  readonly tagCount: number;
  readonly maxDescriptions: number;
  /** Decoder output before the sigmoid. [C] */
  readonly logits: Float32Array;
  /** sigmoid(logit). [C] */
  readonly probabilities: Float32Array;
  /** The bank's thresholds. [C] */
  readonly thresholds: Float32Array;
  /** 1 where probability > threshold (strict, as upstream). [C] */
  readonly passed: Uint8Array;
  /** The re-weighting softmax over each tag's descriptions, when asked for. [C, D] */
  readonly descriptionWeights?: Float32Array;
  /** The bank's mask [C, D] (shared, not copied): which descriptions are real. */
  readonly descriptionMask: Uint8Array;
}

export interface RankedTag {
  index: number;
  logit: number;
  probability: number;
  threshold: number;
  passed: boolean;
}

export function makeTagScores(bank: LabelBank, logits: Float32Array, weights?: Float32Array): TagScores {
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
    maxDescriptions: bank.maxDescriptions,
    logits,
    probabilities,
    thresholds: bank.thresholds,
    passed,
    ...(weights ? { descriptionWeights: weights } : {}),
    descriptionMask: bank.mask,
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
 * Why a tag scored as it did: its descriptions ordered by the weight the image gave them.
 * Needs scores made with `explain`.
 */
export function topDescriptions(scores: TagScores, tagIndex: number, limit = 3): DescriptionWeight[] {
  if (!scores.descriptionWeights) throw new Error('topDescriptions needs scores computed with explain: true');
  if (!(tagIndex >= 0 && tagIndex < scores.tagCount)) throw new RangeError(`tag index ${tagIndex} out of range`);
  const D = scores.maxDescriptions;
  const out: DescriptionWeight[] = [];
  for (let d = 0; d < D; d++) {
    if (scores.descriptionMask[tagIndex * D + d] !== 1) continue;
    out.push({ description: d, weight: scores.descriptionWeights[tagIndex * D + d]! });
  }
  out.sort((a, b) => b.weight - a.weight || a.description - b.description);
  return out.slice(0, Math.max(0, limit));
}
