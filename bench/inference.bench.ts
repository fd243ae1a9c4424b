/**
 * Inference speed and memory on one pack, printed as a markdown section for docs/benchmarks.md:
 *   npx tsx bench/inference.bench.ts [--pack packs/full] [--threads N] [--provider cpu|cuda] [--only encoder,decoder,...]
 * Sections: encoder (images/s at batch 1/4/8), decoder (100…20,000 tags × 51 descriptions),
 * text (texts/s), preprocess (12 MP JPEG), batching (16 concurrent callers through the engine,
 * with event-loop latency meanwhile), then peak RSS. Model sections run the graphs in-process
 * (ModelRunner) to time the model alone; the batching section goes through the worker pool.
 * Defaults to packs/full when it exists (full-size random weights), else packs/tiny.
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { buildLabelBank, createLocalInferenceEngine, type LabelBank } from '../src/inference/index.ts';
// internals: the model sections time the graphs in-process, without the worker pool
import { ModelRunner } from '../src/inference/runtime/model-runner.ts';
import { openModelPack } from '../src/inference/pack/pack.ts';
import { DEFAULT_IMAGE_LIMITS } from '../src/inference/image/limits.ts';
import { preprocessImage } from '../src/inference/image/preprocess.ts';
import { ClipTokenizer } from '../src/inference/text/tokenizer.ts';
import { loadBuiltinVocabulary } from '../src/inference/pack/builtin-vocabulary.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sharedDir = process.env.OMNITAG_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared');
const { values: args } = parseArgs({
  options: {
    pack: { type: 'string' },
    threads: { type: 'string' },
    only: { type: 'string' },
    runs: { type: 'string' },
    provider: { type: 'string' },
  },
});
const provider = (args.provider ?? 'cpu') as 'cpu' | 'cuda';
if (provider !== 'cpu' && provider !== 'cuda') throw new Error('--provider must be cpu or cuda');
const packDir = path.resolve(args.pack ?? (existsSync(path.join(repoRoot, 'packs/full/manifest.json')) ? 'packs/full' : 'packs/tiny'));
const threads = Number(args.threads ?? os.availableParallelism());
const runs = Number(args.runs ?? 3);
const only = new Set((args.only ?? 'encoder,decoder,text,preprocess,batching').split(','));

const pack = await openModelPack(packDir);
const m = pack.manifest;
const S = m.image.size;
const T = m.dims.imageTokens;
const E = m.dims.embedDim;
const lines: string[] = [];
const out = (line = '') => {
  lines.push(line);
  console.error(line);
};

/**
 * Best of `runs` timed calls after one warm-up call, in ms: the machine is shared, and the
 * best run is the one least disturbed by other processes.
 */
async function timeIt(fn: () => Promise<unknown>, n = runs): Promise<number> {
  await fn();
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
};
const pixels = (n: number) => Float32Array.from({ length: n * 3 * S * S }, () => random() * 4 - 2);
function randomBank(tags: number, D: number): LabelBank {
  const rows = new Float32Array(D * E);
  return buildLabelBank({
    key: `bench:${tags}x${D}`,
    embedDim: E,
    tags: Array.from({ length: tags }, () => {
      for (let i = 0; i < rows.length; i++) rows[i] = random() - 0.5;
      for (let d = 0; d < D; d++) {
        const r = rows.subarray(d * E, (d + 1) * E);
        const norm = Math.hypot(...r);
        for (let k = 0; k < E; k++) r[k]! /= norm;
      }
      return { descriptions: rows, threshold: 0.5 };
    }),
  });
}
const fmt = (x: number, digits = 1) => x.toFixed(digits);

out(`### ${m.name} (${m.precision}, image ${S}², T=${T}, E=${E}) — ${new Date().toISOString().slice(0, 10)}`);
out();
out(`Command: \`npx tsx bench/inference.bench.ts --pack ${path.relative(repoRoot, packDir)} --threads ${threads}${provider === 'cpu' ? '' : ` --provider ${provider}`}\``);
out(`Machine: ${os.cpus()[0]?.model ?? 'cpu'} × ${os.availableParallelism()} logical cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; Node ${process.version}; onnxruntime-node CPU, ${threads} intra-op threads; best of ${runs} runs after a warm-up; load average at start ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}.`);
out();

const runner = new ModelRunner(pack, { provider, cudaDeviceId: 0, intraOpThreads: threads });
await runner.warmup();
let bestBatchedImagesPerSecond = NaN;

if (only.has('encoder')) {
  out('| image encoder | ms per run | images/s |');
  out('|---|---|---|');
  for (const b of [1, 4, 8]) {
    const px = pixels(b);
    const ms = await timeIt(() => runner.encodeImages(px, b));
    out(`| batch ${b} | ${fmt(ms)} | ${fmt((1000 * b) / ms, 2)} |`);
  }
  out();
}

if (only.has('decoder')) {
  out('| tag decoder, batch 1, chunks of 1,024 tags | ms per image | tags/s |');
  out('|---|---|---|');
  const embeds = await runner.encodeImages(pixels(1), 1);
  for (const tags of [100, 1000, 4585, 20000]) {
    const bank = randomBank(tags, 51);
    const ms = await timeIt(() => runner.decode(embeds, 1, bank.segments[0]!, { chunkTags: 1024, explain: false }));
    out(`| ${tags.toLocaleString('en')} tags × 51 | ${fmt(ms)} | ${Math.round((tags * 1000) / ms).toLocaleString('en')} |`);
  }
  out();
}

if (only.has('text')) {
  const tokenizer = await ClipTokenizer.fromFile(pack.file(m.tokenizer.file));
  const short = Array.from({ length: 64 }, (_, i) => `a photo of a thing number ${i}, seen from afar.`);
  const long = Array.from({ length: 64 }, (_, i) => `description ${i}: ${'a long sentence about the look of a thing, '.repeat(12)}`);
  for (const [label, texts] of [['short prompts (~14 tokens)', short], ['full-context texts (77 tokens, like LLM descriptions)', long]] as const) {
    const t0 = performance.now();
    const { ids } = tokenizer.encodeBatch(texts, m.tokenizer.context);
    const tokenizeMs = performance.now() - t0;
    const ms = await timeIt(() => runner.encodeTexts(ids, 64));
    out(`Text encoder, 64 ${label}: ${fmt(ms)} ms = **${fmt((64 * 1000) / ms)} texts/s** (tokenising: ${fmt(tokenizeMs, 1)} ms).`);
  }
  out();
}

if (only.has('preprocess')) {
  const file = path.join(sharedDir, 'data', 'images', '1641173_2291260800.jpg');
  if (existsSync(file)) {
    const bytes = readFileSync(file);
    const spec = { size: S, mean: m.image.mean, std: m.image.std };
    const exact = await timeIt(() => preprocessImage(bytes, spec, DEFAULT_IMAGE_LIMITS, { resize: 'exact' }));
    const fast = await timeIt(() => preprocessImage(bytes, spec, DEFAULT_IMAGE_LIMITS, { resize: 'fast' }));
    out(`Preprocessing the 3216×4288 JPEG (1641173_2291260800.jpg) to ${S}²: exact ${fmt(exact)} ms, fast ${fmt(fast)} ms (one image at a time).`);
  } else out('Preprocessing: skipped (../shared/data/images absent).');
  out();
}

await runner.dispose();

if (only.has('batching')) {
  // the best the model does when batches are formed for it: encode 8 + decode 8 on the built-in bank
  const builtin = await loadBuiltinVocabulary(pack);
  {
    const r = new ModelRunner(pack, { provider, cudaDeviceId: 0, intraOpThreads: threads });
    const px = pixels(8);
    const ms = await timeIt(async () => {
      const emb = await r.encodeImages(px, 8);
      await r.decode(emb, 8, builtin.segment, { chunkTags: 1024, explain: false });
    }, 1);
    bestBatchedImagesPerSecond = (8 * 1000) / ms;
    await r.dispose();
  }

  const engine = await createLocalInferenceEngine({ packDir, provider, intraOpThreads: threads, maxBatchSize: 8, maxWaitMs: 5, maxQueue: 64 });
  await engine.start();
  const vocab = await engine.builtinVocabulary();
  const images = Array.from({ length: 16 }, () => ({ pixels: pixels(1) }));
  await engine.scoreImages([images[0]!], [vocab.bank]); // warm-up
  const perCaller = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));

  // a health endpoint on this process's event loop, asked every 20 ms while the callers run
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  await (await fetch(url)).text(); // the first request sets up the client; not measured
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const health: number[] = [];
  let probing = true;
  const probe = async () => {
    while (probing) {
      const t = performance.now();
      await (await fetch(url)).text();
      health.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  loop.enable();
  const probeDone = probe();
  const elu = performance.eventLoopUtilization();
  const before = engine.stats();
  const t0 = performance.now();
  await Promise.all(
    images.map(async (image, i) => {
      for (let k = 0; k < perCaller; k++) await engine.scoreImages([image], [vocab.bank], { fairnessKey: `caller-${i % 4}` });
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const busy = performance.eventLoopUtilization(elu).utilization;
  probing = false;
  await probeDone;
  server.close();
  loop.disable();
  const after = engine.stats();
  await engine.dispose();
  health.sort((a, b) => a - b);
  const p99 = health[Math.min(health.length - 1, Math.floor(health.length * 0.99))] ?? NaN;
  const total = 16 * perCaller;
  const encoderRuns = after.runs.imageEncoder - before.runs.imageEncoder;
  out(
    `Batching: 16 concurrent callers × ${perCaller} single-image requests (built-in ${builtin.bank.tagCount} tags) through the engine: ` +
      `${fmt(total / seconds, 2)} images/s vs ${fmt(bestBatchedImagesPerSecond, 2)} images/s for hand-made batches of 8 in-process ` +
      `(${Math.round((100 * total) / seconds / bestBatchedImagesPerSecond)}%); ${encoderRuns} encoder runs for ${total} images ` +
      `(mean batch ${fmt(total / encoderRuns)}). Main thread meanwhile: event-loop delay p99 ${fmt(loop.percentile(99) / 1e6)} ms, ` +
      `max ${fmt(loop.max / 1e6)} ms; main-thread event-loop utilisation ${fmt(100 * busy)}%; ` +
      `HTTP health request every 20 ms (${health.length} requests): p99 ${fmt(p99)} ms, max ${fmt(health[health.length - 1] ?? NaN)} ms.`,
  );
  out();
}

const rss = process.resourceUsage().maxRSS / 1024;
out(`Peak RSS of the whole run (main thread + workers, all sections): ${Math.round(rss).toLocaleString('en')} MiB.`);
out();
process.stdout.write(`${lines.join('\n')}\n`);
