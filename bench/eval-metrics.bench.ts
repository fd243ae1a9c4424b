/**
 * What the evaluation's arithmetic costs at the size of upstream's largest set (OpenImages
 * common: 57,224 images × 214 tags), on synthetic scores: mAP and per-tag AP, P/R at thresholds,
 * a max-F1 calibration, and reading the score cache back. Scoring the images is the engine's
 * cost and is not counted here.
 *
 *   npx tsx bench/eval-metrics.bench.ts [images] [tags]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { calibrateThresholds } from '../src/eval/calibration.ts';
import { meanAveragePrecision, precisionRecall, predictions } from '../src/eval/metrics.ts';
import { ScoreCache } from '../src/eval/score-cache.ts';

const n = Number(process.argv[2] ?? 57_224);
const k = Number(process.argv[3] ?? 214);
let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const scores = new Float32Array(n * k);
const targets = new Uint8Array(n * k);
for (let i = 0; i < n * k; i++) {
  targets[i] = rand() < 0.01 ? 1 : 0;
  scores[i] = Math.min(1, Math.max(0, (targets[i] ? 0.6 : 0.3) + (rand() - 0.5) * 0.6));
}
const taglist = Array.from({ length: k }, (_, i) => `tag ${i}`);
const thresholds = new Float32Array(k).fill(0.5);

const time = async <T>(label: string, fn: () => T | Promise<T>): Promise<T> => {
  const t0 = performance.now();
  const out = await fn();
  console.log(`${label.padEnd(34)} ${(performance.now() - t0).toFixed(0).padStart(7)} ms`);
  return out;
};

console.log(`${n} images × ${k} tags (node ${process.version})`);
const { mAP } = await time('mAP and per-tag AP', () => meanAveragePrecision(scores, targets, n, k));
await time('P/R at thresholds', () => precisionRecall(predictions(scores, thresholds, taglist, n), targets, n, k));
const cal = await time('calibration (max F1)', () => calibrateThresholds({ taglist, scores, targets, images: n, thresholds, target: { kind: 'maxF1' }, minPositives: 10 }));
const dir = await mkdtemp(path.join(os.tmpdir(), 'omnitag-eval-bench-'));
const file = path.join(dir, 'scores.jsonl');
await time('score cache: write', async () => {
  const cache = await ScoreCache.open(file, 'bench', k);
  for (let i = 0; i < n; i++) await cache.add(`img${i}`, { scores: scores.subarray(i * k, (i + 1) * k) });
  await cache.close();
});
const back = await time('score cache: read back', async () => {
  const cache = await ScoreCache.open(file, 'bench', k);
  await cache.close();
  return cache.entries.size;
});
await rm(dir, { recursive: true, force: true });
console.log(`mAP ${(mAP * 100).toFixed(2)}, ${cal.changes.length} thresholds changed, ${back} images cached`);
