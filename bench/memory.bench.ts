/**
 * Peak extra memory per image of scoring against the 4,585 built-in tags × 51 descriptions:
 * each batch size runs in a fresh process (peak RSS, VmHWM, only grows), after the sessions and
 * the built-in bank are loaded and one warm-up batch of 1 has run; the slope between batch
 * sizes is the memory one more image costs.
 * Usage: npx tsx bench/memory.bench.ts [--pack packs/full] [--chunk 1024]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadBuiltinVocabulary } from '../src/inference/pack/builtin-vocabulary.ts';
import { ModelRunner } from '../src/inference/runtime/model-runner.ts';
import { openModelPack } from '../src/inference/pack/pack.ts';

const { values } = parseArgs({ options: { pack: { type: 'string' }, chunk: { type: 'string' }, child: { type: 'string' } } });
const packDir = path.resolve(values.pack ?? 'packs/full');
const chunk = Number(values.chunk ?? 1024);
const peakMiB = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

if (values.child) {
  const batch = Number(values.child);
  const pack = await openModelPack(packDir);
  const runner = new ModelRunner(pack, { provider: 'cpu', cudaDeviceId: 0, intraOpThreads: 2 });
  await runner.warmup();
  const { segment } = await loadBuiltinVocabulary(pack);
  const S = pack.manifest.image.size;
  const score = async (n: number) => {
    const pixels = new Float32Array(n * 3 * S * S).fill(0.1);
    const embeds = await runner.encodeImages(pixels, n);
    await runner.decode(embeds, n, segment, { chunkTags: chunk, explain: false });
  };
  await score(1); // warm-up: sessions' own buffers for batch 1
  const base = rssMiB();
  await score(batch);
  console.log(JSON.stringify({ batch, baseRssMiB: base, peakMiB: peakMiB() }));
  await runner.dispose();
} else {
  const results = [1, 4].map((b) => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--pack', packDir, '--chunk', String(chunk), '--child', String(b)], { encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').at(-1)!) as { batch: number; baseRssMiB: number; peakMiB: number };
  });
  const [one, four] = results as [(typeof results)[0], (typeof results)[0]];
  const perImage = (four.peakMiB - one.peakMiB) / 3;
  console.log(JSON.stringify({ pack: path.relative(process.cwd(), packDir), chunkTags: chunk, results, extraPeakMiBPerImage: +perImage.toFixed(1) }, null, 2));
}
