/**
 * The evaluation report: mAP and per-tag AP, mean precision / recall at the thresholds in
 * force and per-tag F1, as JSON and as a markdown table; and a calibration diff as markdown.
 */
import type { CalibrationResult } from './calibration.ts';
import { meanAveragePrecision, precisionRecall, predictions } from './metrics.ts';

export interface TagReport {
  tag: string;
  /** Position in the data set's tag list (a repeated name has several). */
  column: number;
  ap: number;
  threshold: number;
  precision: number;
  recall: number;
  f1: number;
  positives: number;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
}

export interface EvalReport {
  dataset: { name: string; layout: string; images: number; tags: number; skipped: Array<{ image: string; code: string; message: string }> };
  scorer: Record<string, unknown>;
  mAP: number;
  meanPrecision: number;
  meanRecall: number;
  meanF1: number;
  tags: TagReport[];
}

export interface ReportInput {
  dataset: EvalReport['dataset'];
  scorer: EvalReport['scorer'];
  taglist: readonly string[];
  scores: Float32Array;
  targets: Uint8Array;
  thresholds: ArrayLike<number>;
}

export function buildReport(input: ReportInput): EvalReport {
  const { taglist, scores, targets, thresholds } = input;
  const n = input.dataset.images;
  const k = taglist.length;
  const { mAP, ap } = meanAveragePrecision(scores, targets, n, k);
  const pr = precisionRecall(predictions(scores, thresholds, taglist, n), targets, n, k);
  const tags = taglist.map((tag, c) => ({
    tag,
    column: c,
    ap: ap[c]!,
    threshold: thresholds[c]!,
    precision: pr.precision[c]!,
    recall: pr.recall[c]!,
    f1: pr.f1[c]!,
    positives: pr.positives[c]!,
    truePositives: pr.truePositives[c]!,
    falsePositives: pr.falsePositives[c]!,
    falseNegatives: pr.falseNegatives[c]!,
  }));
  const meanF1 = k > 0 ? tags.reduce((s, t) => s + t.f1, 0) / k : 0;
  return { dataset: input.dataset, scorer: input.scorer, mAP, meanPrecision: pr.meanPrecision, meanRecall: pr.meanRecall, meanF1, tags };
}

const pct = (x: number) => (x * 100).toFixed(2);
/** Thresholds below 0.001 (calibrated under tiny scores) keep their digits. */
const thr = (t: number) => (t === 0 || t >= 0.001 ? t.toFixed(4) : t.toExponential(3));
/** A cell of a markdown table: pipes escaped, line breaks flattened. */
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ');

export function reportMarkdown(report: EvalReport): string {
  const d = report.dataset;
  const scorer = Object.entries(report.scorer)
    .map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
  const lines = [
    `# Evaluation: ${cell(d.name)}`,
    '',
    `${d.images} images (${d.layout} layout), ${d.tags} tags; scored with ${cell(scorer)}.${d.skipped.length ? ` ${d.skipped.length} image(s) skipped (see the JSON report).` : ''}`,
    '',
    '| mAP | mean precision | mean recall | mean F1 |',
    '|---:|---:|---:|---:|',
    `| ${pct(report.mAP)} | ${pct(report.meanPrecision)} | ${pct(report.meanRecall)} | ${pct(report.meanF1)} |`,
    '',
    'Percentages. AP as RAM++ defines it; precision, recall and F1 at each tag’s threshold in force (a tag passes above it).',
    '',
    '| tag | AP | threshold | precision | recall | F1 | positives |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...report.tags.map((t) => `| ${cell(t.tag)} | ${pct(t.ap)} | ${thr(t.threshold)} | ${pct(t.precision)} | ${pct(t.recall)} | ${pct(t.f1)} | ${t.positives} |`),
  ];
  return `${lines.join('\n')}\n`;
}

export function calibrationMarkdown(result: CalibrationResult): string {
  const target = result.target.kind === 'maxF1' ? 'the best F1' : `precision ≥ ${result.target.precision}`;
  const lines = [
    `# Threshold calibration: ${target}`,
    '',
    `${result.changes.length} tag(s) change; ${result.kept.length} keep their threshold (fewer than ${result.minPositives} positives, target out of reach, or already there). Expected precision and recall are measured on these labels.`,
    '',
    '| tag | old | new | precision before | recall before | expected precision | expected recall | positives |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...result.changes.map(
      (c) => `| ${cell(c.tag)} | ${thr(c.old)} | ${thr(c.new)} | ${pct(c.before.precision)} | ${pct(c.before.recall)} | ${pct(c.expected.precision)} | ${pct(c.expected.recall)} | ${c.positives} |`,
    ),
  ];
  if (result.kept.length) {
    lines.push('', '| kept | threshold | positives | why |', '|---|---:|---:|---|');
    lines.push(...result.kept.map((k) => `| ${cell(k.tag)} | ${thr(k.threshold)} | ${k.positives} | ${k.reason} |`));
  }
  return `${lines.join('\n')}\n`;
}
