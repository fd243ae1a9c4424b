/**
 * What the shape warm-up buys: the first requests of a fresh engine, with and without it.
 *   npx tsx bench/warmup.bench.ts [--pack packs/full] [--threads 2] [--max-batch 4]
 * For each setting: engine start-up (workers, sessions, warm-up), then in order: one image
 * (the first request), the same again, three images at once (a partial batch, a shape the
 * warm-up does not run), the same again, a full batch, the same again — all scored against the
 * built-in vocabulary, images given as pixels so that only the model runs are timed. Prints one
 * JSON line per setting.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLocalInferenceEngine } from '../src/inference/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { pack: { type: 'string' }, threads: { type: 'string' }, 'max-batch': { type: 'string' } } });
const maxBatchSize = Number(args['max-batch'] ?? 4);
const packDir = path.resolve(args.pack ?? (existsSync(path.join(repoRoot, 'packs/full/manifest.json')) ? 'packs/full' : 'packs/tiny'));
const threads = Number(args.threads ?? 2);

for (const warmup of [false, true]) {
  const created = performance.now();
  const engine = await createLocalInferenceEngine({ packDir, intraOpThreads: threads, warmup, maxWaitMs: 1, maxBatchSize });
  try {
    const info = await engine.start();
    const startMs = Math.round(performance.now() - created);
    const { bank } = await engine.builtinVocabulary();
    const S = info.imageSize;
    const images = (n: number) => Array.from({ length: n }, (_, i) => ({ pixels: new Float32Array(3 * S * S).fill((i % 7) / 7 - 0.5) }));
    const row: Record<string, unknown> = { pack: path.basename(packDir), warmup, threads, maxBatchSize, startMs, warmupMs: info.startup?.warmupMs };
    for (const [name, n] of [['first1', 1], ['second1', 1], ['first3', 3], ['second3', 3], ['firstFull', maxBatchSize], ['secondFull', maxBatchSize]] as const) {
      const t = performance.now();
      await engine.scoreImages(images(n), [bank]);
      row[`${name}Ms`] = Math.round(performance.now() - t);
    }
    console.log(JSON.stringify(row));
  } finally {
    await engine.dispose();
  }
}
