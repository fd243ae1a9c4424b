/**
 * What heat maps cost, printed as a markdown section for docs/benchmarks.md:
 *   npx tsx bench/heatmaps.bench.ts [--pack packs/full-heatmaps] [--threads N] [--runs N] [--image FILE]
 * The graphs run in-process (ModelRunner / onnxruntime sessions), so the figures are the
 * models' alone. Sections:
 *  1. the built-in vocabulary (4,585 tags × 51) decoded with tag_decoder.onnx, as every request;
 *  2. the chosen design: a second pass with tag_decoder_heatmaps.onnx over the returned tags only
 *     (and 10 / 50 tags), timed, with the memory it adds;
 *  3. the alternative it was chosen over: the heat-map graph run over all tags, with and without
 *     fetching cross_attention (output selection), and whether its logits equal the plain graph's.
 */
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
// internals: the graphs are timed in-process, without the worker pool
import { ModelRunner } from '../src/inference/runtime/model-runner.ts';
import { openModelPack } from '../src/inference/pack/pack.ts';
import { loadBuiltinVocabulary } from '../src/inference/pack/builtin-vocabulary.ts';
import { preprocessImage } from '../src/inference/image/preprocess.ts';
import { DEFAULT_IMAGE_LIMITS } from '../src/inference/image/limits.ts';
import { makeTagScores, passedTags } from '../src/inference/scoring/scores.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sharedDir = process.env.OMNITAG_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared');
const { values: args } = parseArgs({
  options: { pack: { type: 'string' }, threads: { type: 'string' }, runs: { type: 'string' }, image: { type: 'string' } },
});
const packDir = path.resolve(args.pack ?? 'packs/full-heatmaps');
const threads = Number(args.threads ?? os.availableParallelism());
const runs = Number(args.runs ?? 3);
const imageFile = args.image ?? path.join(sharedDir, 'data', 'images', 'demo4.jpg');

const pack = await openModelPack(packDir);
const m = pack.manifest;
if (!m.heatmaps) throw new Error(`${packDir} has no heat-map graph: export it with --heatmaps`);
const { imageTokens: T, embedDim: E } = m.dims;
const L = m.heatmaps.layers;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const rss = () => process.memoryUsage().rss;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const lines: string[] = [];
const out = (s = '') => {
  lines.push(s);
  console.error(s);
};

const runner = new ModelRunner(pack, { provider: 'cpu', cudaDeviceId: 0, intraOpThreads: threads });
const builtin = await loadBuiltinVocabulary(pack);
const seg = builtin.segment;
const D = seg.maxDescriptions;
const { size, mean, std } = m.image;
const { pixels } = await preprocessImage(readFileSync(imageFile), { size, mean, std }, DEFAULT_IMAGE_LIMITS);
const embeds = await runner.encodeImages(pixels, 1);

out(`### Heat maps (${m.name}, ${threads} threads, median of ${runs})`);
out();
out(`Load while measuring (\`uptime\`): ${execFileSync('uptime').toString().trim()}`);
out();

// 1. every request: the decoder over the whole built-in vocabulary (the map graph is not loaded)
const rssNoMaps = rss();
const decodeMs: number[] = [];
let logits: Float32Array = new Float32Array(0);
for (let r = 0; r < runs; r++) {
  const before = runner.runMs.tagDecoder;
  logits = (await runner.decode(embeds, 1, seg, { chunkTags: 1024, explain: false })).logits;
  decodeMs.push(runner.runMs.tagDecoder - before);
}
const scores = makeTagScores(builtin.bank, logits);
const returned = passedTags(scores).map((t) => t.index);

// 2. the second pass over some tags' rows only (what the engine does for the returned tags)
const gather = (rows: number[]) => {
  const e = new Float32Array(rows.length * D * E);
  const mask = new Uint8Array(rows.length * D);
  rows.forEach((row, i) => {
    e.set(seg.embeds.subarray(row * D * E, (row + 1) * D * E) as unknown as ArrayLike<number>, i * D * E);
    mask.set(seg.mask.subarray(row * D, (row + 1) * D), i * D);
  });
  return { tagCount: rows.length, maxDescriptions: D, embedDim: E, embeds: e, mask };
};
const firstRows = (k: number) => Array.from({ length: k }, (_, i) => (i * 97) % seg.tagCount);
const rssBeforeSession = rss();
await runner.attention(embeds, gather([0])); // creates the heat-map session (first use)
const rssAfterSession = rss();
out(`| work | tags | decoder runs (ms) | added per request |`);
out(`|---|---:|---:|---|`);
out(`| scoring, every request (tag_decoder.onnx, chunks of 1,024) | ${seg.tagCount} | ${median(decodeMs).toFixed(0)} | — |`);
for (const [label, rows] of [
  [`maps for the returned tags (${returned.length} passed their thresholds)`, returned.length ? returned : firstRows(1)],
  ['maps for 10 tags', firstRows(10)],
  ['maps for 50 tags', firstRows(50)],
] as const) {
  const tags = gather([...rows]);
  const ms: number[] = [];
  for (let r = 0; r < runs; r++) {
    const before = runner.runMs.heatmapDecoder;
    await runner.attention(embeds, tags);
    ms.push(runner.runMs.heatmapDecoder - before);
  }
  const bytes = tags.embeds.byteLength + tags.mask.byteLength + rows.length * L * T * 4;
  out(`| ${label} (tag_decoder_heatmaps.onnx) | ${rows.length} | ${median(ms).toFixed(1)} | ${(median(ms) / median(decodeMs) * 100).toFixed(1)} % of the decoder time; ${(bytes / 1024).toFixed(0)} KiB of inputs and outputs |`);
}
out();
out(`Memory: RSS ${mib(rssNoMaps)} after scoring without maps; the heat-map session, created on the first request for maps, added ${mib(rssAfterSession - rssBeforeSession)} (its graph is ${mib(m.files[m.heatmaps.graph]!.bytes)} of weights); per request, the gathered rows (${D} × ${E} float32 = ${(D * E * 4 / 1024).toFixed(0)} KiB per tag) and the output (${L} × ${T} float32 per tag) — see the last column.`);
out();

// 3. the alternative: one graph with the maps as an extra output, run over every tag
const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
const plain = await ort.InferenceSession.create(pack.graphPath('tagDecoder'), options);
const withMaps = await ort.InferenceSession.create(pack.file(m.heatmaps.graph), options);
const image = new ort.Tensor('float32', embeds, [1, T, E]);
const timeAll = async (session: ort.InferenceSession, fetches: string[]) => {
  const ms: number[] = [];
  const all = new Float32Array(seg.tagCount);
  for (let r = 0; r < runs; r++) {
    let total = 0;
    for (let start = 0; start < seg.tagCount; start += 1024) {
      const n = Math.min(1024, seg.tagCount - start);
      const feeds = {
        image_embeds: image,
        label_embeds: new ort.Tensor('float32', (seg.embeds as Float32Array).slice(start * D * E, (start + n) * D * E), [n, D, E]),
        label_mask: new ort.Tensor('bool', seg.mask.slice(start * D, (start + n) * D), [n, D]),
      };
      const t0 = performance.now();
      const o = await session.run(feeds, fetches);
      total += performance.now() - t0;
      all.set(o.logits!.data as Float32Array, start);
    }
    ms.push(total);
  }
  return { ms: median(ms), logits: all };
};
const a = await timeAll(plain, ['logits']);
const b = await timeAll(withMaps, ['logits']);
const c = await timeAll(withMaps, ['logits', m.heatmaps.output]);
let maxDiff = 0;
let identical = true;
for (let i = 0; i < a.logits.length; i++) {
  maxDiff = Math.max(maxDiff, Math.abs(a.logits[i]! - b.logits[i]!));
  if (a.logits[i] !== b.logits[i]) identical = false;
}
out(`Alternative (not chosen): the map-producing graph run over all ${seg.tagCount} tags on every request.`);
out();
out(`| graph, fetches | ms for ${seg.tagCount} tags |`);
out(`|---|---:|`);
out(`| tag_decoder.onnx, logits (what every request runs) | ${a.ms.toFixed(0)} |`);
out(`| tag_decoder_heatmaps.onnx, logits only (output selection) | ${b.ms.toFixed(0)} |`);
out(`| tag_decoder_heatmaps.onnx, logits + ${m.heatmaps.output} | ${c.ms.toFixed(0)} |`);
out();
out(`Logits of the two graphs over all tags: ${identical ? 'bit-identical' : `max |difference| ${maxDiff.toExponential(2)}`}.`);
await plain.release();
await withMaps.release();
await runner.dispose();
process.stdout.write(`${lines.join('\n')}\n`);
