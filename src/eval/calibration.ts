/**
 * Per-tag thresholds learnt from scores and labels: the one that maximises F1, or the lowest
 * that reaches a target precision (the most recall at that precision). A tag with fewer
 * labelled positives than `minPositives` keeps its threshold: a handful of examples is no
 * evidence. The result is a diff (tag, old, new, expected precision and recall on these
 * labels), applied elsewhere.
 */
import { badInput } from '../core/errors.ts';
import { columnsByName, f1Score, precisionRecallCurve } from './metrics.ts';

export type CalibrationTarget = { kind: 'maxF1' } | { kind: 'precision'; precision: number };

export interface CalibrationInput {
  taglist: readonly string[];
  /** Row-major [image][tag] probabilities and 0/1 labels over `taglist`. */
  scores: ArrayLike<number>;
  targets: ArrayLike<number>;
  images: number;
  /** The thresholds in force, per tag-list entry. */
  thresholds: ArrayLike<number>;
  target: CalibrationTarget;
  minPositives: number;
}

export interface ThresholdChange {
  tag: string;
  old: number;
  new: number;
  positives: number;
  /** On these labels, at the old threshold and at the new one. */
  before: { precision: number; recall: number; f1: number };
  expected: { precision: number; recall: number; f1: number };
}

export interface KeptThreshold {
  tag: string;
  threshold: number;
  positives: number;
  reason: 'few-positives' | 'precision-unreachable' | 'unchanged';
}

export interface CalibrationResult {
  target: CalibrationTarget;
  minPositives: number;
  changes: ThresholdChange[];
  kept: KeptThreshold[];
}

/** BAD_USER_INPUT for a target precision outside (0, 1] or a minimum of positives below 1. */
export function checkCalibration(target: CalibrationTarget, minPositives: number): void {
  if (target.kind === 'precision' && !(target.precision > 0 && target.precision <= 1)) throw badInput('the target precision must be in (0, 1]', { field: 'target' });
  if (!Number.isInteger(minPositives) || minPositives < 1) throw badInput('the minimum number of positives must be a positive integer', { field: 'minPositives' });
}

/**
 * Calibrates each distinct tag name once (on its first column: duplicate entries of one name
 * share its scores and its vocabulary threshold).
 */
export function calibrateThresholds(input: CalibrationInput): CalibrationResult {
  const { taglist, scores, targets, images: n, thresholds, target, minPositives } = input;
  checkCalibration(target, minPositives);
  const k = taglist.length;
  const changes: ThresholdChange[] = [];
  const kept: KeptThreshold[] = [];
  for (const [tag, cols] of columnsByName(taglist)) {
    const col = cols[0]!;
    const old = thresholds[col]!;
    let positives = 0;
    for (let i = 0; i < n; i++) if (targets[i * k + col] === 1) positives++;
    if (positives < minPositives) {
      kept.push({ tag, threshold: old, positives, reason: 'few-positives' });
      continue;
    }
    const curve = precisionRecallCurve(scores, targets, n, k, col); // ranks the column: only for tags it may change
    const pick = chooseCut(curve, target);
    if (pick < 0) {
      kept.push({ tag, threshold: old, positives, reason: 'precision-unreachable' });
      continue;
    }
    const point = curve[pick]!;
    const next = thresholdBelow(point.score, curve[pick + 1]?.score ?? 0);
    const before = atThreshold(scores, targets, n, k, col, old, positives);
    if (next === old) {
      kept.push({ tag, threshold: old, positives, reason: 'unchanged' });
      continue;
    }
    changes.push({
      tag,
      old,
      new: next,
      positives,
      before,
      expected: { precision: point.precision, recall: point.recall, f1: f1Score(point.precision, point.recall) },
    });
  }
  return { target, minPositives, changes, kept };
}

/**
 * Index of the chosen curve point, or -1 when no point reaches the target precision. F1 ties
 * go to the higher threshold (fewer tags shown for the same F1).
 */
function chooseCut(curve: readonly { precision: number; recall: number }[], target: CalibrationTarget): number {
  let best = -1;
  if (target.kind === 'maxF1') {
    let bestF1 = 0;
    curve.forEach((p, i) => {
      const f = f1Score(p.precision, p.recall);
      if (f > bestF1) {
        bestF1 = f;
        best = i;
      }
    });
    return best;
  }
  // the lowest threshold (the last point down the curve) whose precision still reaches the target
  curve.forEach((p, i) => {
    if (p.recall > 0 && p.precision >= target.precision) best = i;
  });
  return best;
}

/**
 * A threshold that passes `score` and not `lower` under the strict `score > threshold` rule:
 * the midpoint (margin on both sides for unseen images), in float32 as the engine compares, and
 * inside the (0, 1) that a threshold override allows.
 */
export function thresholdBelow(score: number, lower: number): number {
  let t = Math.fround((score + lower) / 2);
  if (!(Math.fround(score) > t)) t = Math.fround(lower);
  const min = Math.fround(1e-6);
  const max = Math.fround(1 - 1e-6);
  return Math.min(Math.max(t, min), max);
}

function atThreshold(scores: ArrayLike<number>, targets: ArrayLike<number>, n: number, k: number, col: number, threshold: number, positives: number) {
  let tp = 0;
  let predicted = 0;
  for (let i = 0; i < n; i++) {
    if (scores[i * k + col]! > threshold) {
      predicted++;
      if (targets[i * k + col] === 1) tp++;
    }
  }
  const precision = predicted > 0 ? tp / predicted : 0;
  const recall = positives > 0 ? tp / positives : 0;
  return { precision, recall, f1: f1Score(precision, recall) };
}
