/**
 * The pack's graphs through onnxruntime-node and the same modules in PyTorch eager, side by side:
 *   npx tsx bench/onnx-vs-pytorch.ts [--pack packs/full] [--threads 2] [--warmup 2] [--runs 3] [--budget 10]
 *       [--only matmul,encoder,decoder,text] [--python /usr/bin/python3] [--openblas-coretype NAME]
 *       [--pytorch-malloc default|jemalloc] [--int8-pack packs/full-int8] [--json out.json]
 * Items: fp32 matmul peak (a chain of MatMul nodes vs the same chain of torch.mm), image encoder at batch
 * 1/4/8, tag decoder at batch 1 for 100/1,000/4,585 tags × 51 descriptions (one run per
 * vocabulary, both outputs) and at batch 8 for 4,585 tags, text encoder at 64 × 77 tokens.
 * With --int8-pack (the same model exported with --quantize int8), every encoder and decoder item
 * also runs that pack's graphs, right after the float32 ones, and the matmul item also times the
 * chain in each int8 formulation the export tool offers, with the op types left after ORT's graph
 * optimisation (proof that the chain was fused into the integer kernel). A closing table sums
 * the closed-set path (encoder + decoder at 4,585 tags) at batch 1 and 8. ORT sessions come from
 * src/inference/sessions.ts (the engine's settings: all graph optimisations, spinning off).
 * bench/pytorch_eager.py runs as a child (--serve) and each item is timed by ORT and then at
 * once by PyTorch, so both see about the same machine load on this shared machine; idle, each
 * side leaves the cores alone (ORT spinning off, Python blocked on its stdin).
 * Timing policy on both sides: --warmup untimed calls, then calls until --runs are done or
 * --budget seconds are spent (at least one); medians are compared. Two warm-up calls, because
 * ORT's first two runs at a new input shape are 2–3× slower (the first sizes its arena, the
 * second allocates the memory pattern it recorded; fresh pages are slow to fault in on this VM).
 * Prints a markdown section (stdout) for docs/benchmarks.md.
 *
 * PyTorch runs with OpenBLAS's own choice of kernels for this CPU (OPENBLAS_CORETYPE removed
 * from its environment unless --openblas-coretype is given): a forced older kernel family
 * would slow PyTorch down and flatter onnxruntime. Eager PyTorch allocates every intermediate
 * afresh and glibc hands large blocks back to the kernel on free, so each run faults its pages
 * in again (slow on this VM); `--pytorch-malloc jemalloc` preloads jemalloc with page decay off
 * (the usual CPU-serving advice), which keeps freed pages for reuse as ORT's arena does.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { openModelPack } from '../src/inference/pack/pack.ts';
import { createGraphSession, silentLogger, type SessionSettings } from '../src/inference/runtime/sessions.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    pack: { type: 'string', default: 'packs/full' },
    threads: { type: 'string' },
    warmup: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
    budget: { type: 'string', default: '10' },
    only: { type: 'string', default: 'matmul,encoder,decoder,text' },
    python: { type: 'string', default: '/usr/bin/python3' },
    'openblas-coretype': { type: 'string' },
    'pytorch-malloc': { type: 'string', default: 'default' },
    json: { type: 'string' },
    'int8-pack': { type: 'string' },
  },
});
const packDir = path.resolve(args.pack!);
const threads = Number(args.threads ?? os.availableParallelism());
const warmup = Number(args.warmup);
const runs = Number(args.runs);
const budgetS = Number(args.budget);
const only = new Set(args.only!.split(','));
const batches = [1, 4, 8];
const tagCounts = [100, 1000, 4585];
/** Decoder batches beyond 1, at the full vocabulary only. */
const decoderBatches = [8];
const int8Dir = args['int8-pack'] && path.resolve(args['int8-pack']);
const D = 51;
const textBatch = 64;

const log = (msg: string) => console.error(msg);
const load1 = () => os.loadavg()[0]!;

interface Timing {
  median_ms: number;
  min_ms: number;
  runs: number;
}
type Result = Timing & Record<string, number>;

/** Same policy as bench/pytorch_eager.py's `timed`. */
async function timed(fn: () => Promise<unknown>): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < runs && (times.length === 0 || performance.now() - start < budgetS * 1000)) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median_ms: median, min_ms: sorted[0]!, runs: times.length };
}

let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
};
const randomArray = (n: number, scale = 4) => Float32Array.from({ length: n }, () => (random() - 0.5) * scale);

// ----------------------------------------------------------------------------- FLOP counts
// 2 FLOP per multiply-add, matrix products and the patch convolution only (norms, softmax,
// GELU and adds are < 1 % here).

interface SwinDims {
  patch: number;
  window: number;
  embedDim: number;
  depths: number[];
  heads: number[];
}

/**
 * Swin per block on N = R² tokens of width C, window w (the grid when R ≤ w):
 * qkv 6NC² + proj 2NC² + MLP 16NC² + q·kᵀ and attn·v 2·(2N·w²·C) = 24NC² + 4Nw²C;
 * patch merging into N' tokens: 2N'·4C·2C = 16N'C²; patch embedding 2·(S/p)²·C₀·3p²;
 * image_proj 2·T·C_last·E.
 */
function imageEncoderFlops(S: number, sw: SwinDims, T: number, E: number): number {
  let R = S / sw.patch;
  let C = sw.embedDim;
  let f = 2 * R * R * C * 3 * sw.patch * sw.patch;
  sw.depths.forEach((depth, i) => {
    const N = R * R;
    const w = Math.min(sw.window, R);
    f += depth * (24 * N * C * C + 4 * N * w * w * C);
    if (i < sw.depths.length - 1) {
      R /= 2;
      f += 16 * R * R * C * C;
      C *= 2;
    }
  });
  return f + 2 * T * C * E;
}

/**
 * Decoder, one image, C tags × D descriptions: re-weighting 4·C·D·E, wordvec_proj 2CEH, per layer
 * query + output 4CH², keys/values 4TEH, q·kᵀ + attn·v 4CTH, MLP 4CHI; fc 2CH.
 */
function decoderFlops(C: number, Dd: number, T: number, E: number, H: number, I: number, layers: number): number {
  return 4 * C * Dd * E + 2 * C * E * H + layers * (4 * C * H * H + 4 * T * E * H + 4 * C * T * H + 4 * C * H * I) + 2 * C * H;
}

/** CLIP text tower, N texts × L tokens: per layer 24·N·L·W² + 4·N·L²·W (full L×L products). */
function textFlops(N: number, L: number, W: number, layers: number, E: number): number {
  return layers * (24 * N * L * W * W + 4 * N * L * L * W) + 2 * N * W * E;
}

// ----------------------------------------------------------------------------- PyTorch child

interface PyInfo {
  torch: string;
  threads: number;
  blas: string | null;
  openblas_coretype_env: string | null;
  malloc: string;
}

function jemallocPath(): string {
  const listed = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? '';
  const found = /libjemalloc\.so\.2 .*=> (\S+)/.exec(listed)?.[1];
  if (!found) throw new Error('--pytorch-malloc jemalloc: libjemalloc.so.2 not found (Debian: apt-get install libjemalloc2)');
  return found;
}

/** bench/pytorch_eager.py --serve: one item name per line in, one JSON line out. */
class PyTorchSide {
  private readonly child;
  private readonly lines: AsyncIterator<string>;
  private constructor() {
    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    if (args['openblas-coretype']) env.OPENBLAS_CORETYPE = args['openblas-coretype'];
    if (args['pytorch-malloc'] === 'jemalloc') {
      env.LD_PRELOAD = jemallocPath();
      env.MALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1';
    } else if (args['pytorch-malloc'] !== 'default') throw new Error(`--pytorch-malloc: expected default or jemalloc, got ${args['pytorch-malloc']}`);
    const pyArgs = [
      path.join(repoRoot, 'bench/pytorch_eager.py'),
      '--serve',
      ...['--pack', packDir, '--threads', String(threads), '--warmup', String(warmup), '--runs', String(runs), '--budget', String(budgetS)],
      ...['--descriptions', String(D), '--text-batch', String(textBatch)],
    ];
    this.child = spawn(args.python!, pyArgs, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  static async start(): Promise<{ side: PyTorchSide; info: PyInfo }> {
    const side = new PyTorchSide();
    const first = JSON.parse(await side.next()) as { info: PyInfo };
    return { side, info: first.info };
  }

  private async next(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`${args.python} bench/pytorch_eager.py ended early (exit code ${this.child.exitCode})`);
    return r.value;
  }

  async item(name: string): Promise<Result> {
    this.child.stdin.write(`${name}\n`);
    const reply = JSON.parse(await this.next()) as { result?: Result; error?: string };
    if (!reply.result) throw new Error(`PyTorch ${name}: ${reply.error}`);
    return reply.result;
  }

  close(): void {
    this.child.stdin.end();
  }
}

// ----------------------------------------------------------------------------- the run

const pack = await openModelPack(packDir);
const m = pack.manifest;
const S = m.image.size;
const T = m.dims.imageTokens;
const E = m.dims.embedDim;
const L = m.dims.textContext;
const dims = m.dims as unknown as {
  decoderHidden: number;
  decoderLayers: number;
  decoderIntermediate: number;
  swin: SwinDims;
  text: { width: number; layers: number };
};
const settings: SessionSettings = { provider: 'cpu', cudaDeviceId: 0, intraOpThreads: threads };
const startedAt = new Date();
const uptimeAtStart = spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
log(`uptime: ${uptimeAtStart}`);

const int8Pack = int8Dir ? await openModelPack(int8Dir) : undefined;
if (int8Pack && int8Pack.manifest.precision !== 'int8') throw new Error(`--int8-pack: ${int8Dir} is a ${int8Pack.manifest.precision} pack`);
const { side: py, info: pyInfo } = await PyTorchSide.start();
const rows: Array<{ item: string; ort: Result; int8?: Result; pt: Result; load: number }> = [];
async function compare(item: string, ortRun: () => Promise<Result>, int8Run?: () => Promise<Result>): Promise<void> {
  const load = load1();
  const o = await ortRun();
  log(`${item}: ORT ${o.median_ms.toFixed(1)} ms (median of ${o.runs}) …`);
  const q = int8Run && (await int8Run());
  if (q) log(`${item}: ORT int8 ${q.median_ms.toFixed(1)} ms (median of ${q.runs}) …`);
  const p = await py.item(item);
  log(`${item}: PyTorch ${p.median_ms.toFixed(1)} ms (median of ${p.runs}); 1-min load ${load.toFixed(2)} → ${load1().toFixed(2)}`);
  rows.push({ item, ort: o, ...(q ? { int8: q } : {}), pt: p, load: Math.max(load, load1()) });
}
/** The matmul chain in each int8 formulation: time, and the op types ORT's optimiser left. */
const int8Chains: Array<{ format: string; result: Result; optimisedOps: Record<string, number> }> = [];
const sessionLoadMs: Record<string, number> = {};
interface MatmulChain {
  path: string;
  rows: number;
  dims: number[];
  flop: number;
  int8: Record<string, string>;
}
let chain: MatmulChain | undefined;
async function session(graph: 'imageEncoder' | 'tagDecoder' | 'textEncoder', from = pack): Promise<ort.InferenceSession> {
  const t = performance.now();
  const { session: s } = await createGraphSession(from, graph, settings, silentLogger);
  sessionLoadMs[from === pack ? graph : `${graph} (int8)`] = performance.now() - t;
  return s;
}

try {
  if (only.has('matmul')) {
    // sessions.ts builds pack graphs only, so the engine's CPU options are repeated here
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-matmul-'));
    try {
      const gen = spawnSync(args.python!, [path.join(repoRoot, 'bench/pytorch_eager.py'), '--write-matmul-onnx', tmp], { encoding: 'utf8' });
      if (gen.status !== 0) throw new Error(`could not write the MatMul graph: ${gen.stderr.trim()}`);
      chain = JSON.parse(gen.stdout) as MatmulChain;
      const s = await ort.InferenceSession.create(chain.path, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      const a = new ort.Tensor('float32', randomArray(chain.rows * chain.dims[0]!), [chain.rows, chain.dims[0]!]);
      await compare('matmul', () => timed(() => s.run({ a })) as Promise<Result>);
      await s.release();
      for (const [format, file] of int8Pack ? Object.entries(chain.int8) : []) {
        const optimised = path.join(tmp, `optimised-${format}.onnx`);
        const q = await ort.InferenceSession.create(file, {
          executionProviders: ['cpu'],
          graphOptimizationLevel: 'all',
          executionMode: 'sequential',
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          optimizedModelFilePath: optimised,
          logSeverityLevel: 3,
          extra: { session: { intra_op: { allow_spinning: '0' } } },
        });
        const result = (await timed(() => q.run({ a }))) as Result;
        await q.release();
        const ops = spawnSync(args.python!, [path.join(repoRoot, 'bench/pytorch_eager.py'), '--op-counts', optimised], { encoding: 'utf8' });
        if (ops.status !== 0) throw new Error(`could not read the optimised graph: ${ops.stderr.trim()}`);
        int8Chains.push({ format, result, optimisedOps: JSON.parse(ops.stdout) as Record<string, number> });
        log(`matmul int8 (${format}): ${result.median_ms.toFixed(1)} ms; after ORT's optimiser: ${ops.stdout.trim()}`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  let imageEmbeds: ort.Tensor | undefined;
  if (only.has('encoder') || only.has('decoder')) {
    const enc = await session('imageEncoder');
    const encQ = int8Pack && only.has('encoder') ? await session('imageEncoder', int8Pack) : undefined;
    for (const b of only.has('encoder') ? batches : []) {
      const pixel_values = new ort.Tensor('float32', randomArray(b * 3 * S * S), [b, 3, S, S]);
      const run = (s: ort.InferenceSession) => async () => {
        const r = await timed(() => s.run({ pixel_values }));
        return { ...r, batch: b, images_per_s: b / (r.median_ms / 1000) };
      };
      await compare(`encoder_b${b}`, run(enc), encQ && run(encQ));
    }
    await encQ?.release();
    const out = await enc.run({ pixel_values: new ort.Tensor('float32', randomArray(3 * S * S), [1, 3, S, S]) });
    imageEmbeds = out.image_embeds as ort.Tensor;
    await enc.release();
  }

  if (only.has('decoder')) {
    const dec = await session('tagDecoder');
    const decQ = int8Pack ? await session('tagDecoder', int8Pack) : undefined;
    const runs: Array<[number, number]> = [...tagCounts.map((c): [number, number] => [1, c]), ...decoderBatches.map((b): [number, number] => [b, 4585])];
    for (const [b, c] of runs) {
      const lab = randomArray(c * D * E, 1);
      for (let row = 0; row < c * D; row++) {
        const v = lab.subarray(row * E, (row + 1) * E);
        let n = 0;
        for (const x of v) n += x * x;
        n = Math.sqrt(n);
        for (let k = 0; k < E; k++) v[k]! /= n;
      }
      const one = imageEmbeds!.data as Float32Array;
      const embeds = new Float32Array(b * one.length);
      for (let i = 0; i < b; i++) embeds.set(one, i * one.length);
      const feeds = {
        image_embeds: new ort.Tensor('float32', embeds, [b, T, E]),
        label_embeds: new ort.Tensor('float32', lab, [c, D, E]),
        label_mask: new ort.Tensor('bool', new Uint8Array(c * D).fill(1), [c, D]),
      };
      const run = (s: ort.InferenceSession) => async () => ({ ...(await timed(() => s.run(feeds))), batch: b, tags: c, descriptions: D });
      await compare(b === 1 ? `decoder_c${c}` : `decoder_b${b}_c${c}`, run(dec), decQ && run(decQ));
    }
    await decQ?.release();
    await dec.release();
  }

  if (only.has('text')) {
    const txt = await session('textEncoder');
    // full-context rows (start token first, end token last), as in the PyTorch script
    const ids = BigInt64Array.from({ length: textBatch * L }, (_, i) =>
      BigInt(i % L === 0 ? m.tokenizer.bos : i % L === L - 1 ? m.tokenizer.eos : 1 + Math.floor(random() * 48999)),
    );
    const input_ids = new ort.Tensor('int64', ids, [textBatch, L]);
    await compare('text', async () => {
      const r = await timed(() => txt.run({ input_ids }));
      return { ...r, batch: textBatch, length: L, texts_per_s: textBatch / (r.median_ms / 1000) };
    });
    await txt.release();
  }
} finally {
  py.close();
}
const uptimeAtEnd = spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
const seconds = (Date.now() - startedAt.getTime()) / 1000;

// ----------------------------------------------------------------------------- report

const encFlop = imageEncoderFlops(S, dims.swin, T, E);
const decFlop = (c: number) => decoderFlops(c, D, T, E, dims.decoderHidden, dims.decoderIntermediate, dims.decoderLayers);
const txtFlop = textFlops(textBatch, L, dims.text.width, dims.text.layers, E);
/** decoder_cC / decoder_bB_cC → [B, C] */
const decoderItem = (item: string): [number, number] => {
  const m = /^decoder(?:_b(\d+))?_c(\d+)$/.exec(item)!;
  return [Number(m[1] ?? 1), Number(m[2])];
};
const flopOf = (item: string): number => {
  if (item === 'matmul') return chain!.flop;
  if (item === 'text') return txtFlop;
  if (item.startsWith('decoder')) {
    const [b, c] = decoderItem(item);
    return b * decFlop(c);
  }
  return Number(item.slice('encoder_b'.length)) * encFlop;
};
const gflops = (item: string, r: Timing) => flopOf(item) / r.median_ms / 1e6;
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const peak = rows.find((r) => r.item === 'matmul');
const lines: string[] = [];
const out = (line = '') => lines.push(line);
const flags = [`--pack ${path.relative(repoRoot, packDir)}`, `--threads ${threads}`, `--warmup ${warmup}`, `--runs ${runs}`, `--budget ${budgetS}`];
if (args.only !== 'matmul,encoder,decoder,text') flags.push(`--only ${args.only}`);
if (args['openblas-coretype']) flags.push(`--openblas-coretype ${args['openblas-coretype']}`);
if (args['pytorch-malloc'] !== 'default') flags.push(`--pytorch-malloc ${args['pytorch-malloc']}`);
if (int8Dir) flags.push(`--int8-pack ${path.relative(repoRoot, int8Dir)}`);

out(`#### ${m.name}, ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
out();
out(`Command: \`npx tsx bench/onnx-vs-pytorch.ts ${flags.join(' ')}\` (${Math.round(seconds)} s in all)`);
out();
out(
  `Machine: ${os.cpus()[0]?.model ?? 'cpu'} × ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; Node ${process.version}, ` +
    `onnxruntime-node ${ort.env.versions.common} (CPU, ${threads} intra-op threads, optimisation "all", spinning off); ` +
    `PyTorch ${pyInfo.torch} eager (${pyInfo.threads} threads, OpenBLAS kernels ${pyInfo.blas ?? 'unknown'}, inference_mode, ` +
    `${pyInfo.malloc === 'jemalloc' ? 'jemalloc with page decay off' : `${pyInfo.malloc} malloc`}). ` +
    `Median of up to ${runs} runs after ${warmup} warm-up run${warmup === 1 ? '' : 's'}, at most ~${budgetS} s of timed runs per item and side.`,
);
out();
out(`\`uptime\` at the start: \`${uptimeAtStart}\`; at the end: \`${uptimeAtEnd}\`.`);
out();
const withInt8 = rows.some((r) => r.int8);
if (withInt8) {
  out(`int8 pack: \`${path.relative(repoRoot, int8Dir!)}\` (${int8Pack!.manifest.name}, ${int8Pack!.manifest.quantization?.method ?? '?'} quantisation); "speed-up" columns are PyTorch's time ÷ the other's.`);
  out();
  out('| item | onnxruntime float32 | onnxruntime int8 | PyTorch eager | float32 speed-up | int8 speed-up | int8 ÷ float32 | 1-min load |');
  out('|---|---|---|---|---|---|---|---|');
} else {
  out('| item | onnxruntime | PyTorch eager | ORT ÷ PyTorch | 1-min load |');
  out('|---|---|---|---|---|');
}
for (const { item, ort: o, int8: q, pt: p, load } of rows) {
  const speedup = `**${f2(p.median_ms / o.median_ms)}×**`;
  const runsOf = (r: Timing) => (r.runs < 3 ? ` [${r.runs} run${r.runs > 1 ? 's' : ''}]` : '');
  let label: string;
  let cell: (r: Timing) => string;
  if (item === 'matmul') {
    label = `fp32 matmul peak (${chain!.dims.length - 1} chained: ${chain!.rows} × ${[...new Set(chain!.dims)].join('/')})`;
    cell = (r) => `${f1(gflops(item, r))} GFLOP/s`;
  } else if (item.startsWith('encoder')) {
    const b = Number(item.slice('encoder_b'.length));
    label = `image encoder, batch ${b}`;
    cell = (r) => `${f2((1000 * b) / r.median_ms)} images/s (${f1(r.median_ms)} ms)${runsOf(r)}`;
  } else if (item.startsWith('decoder')) {
    const [b, c] = decoderItem(item);
    label = `tag decoder, ${b} image${b > 1 ? 's' : ''} × ${c.toLocaleString('en')} tags × ${D}`;
    cell = (r) => `${f1(r.median_ms)} ms${runsOf(r)}`;
  } else {
    label = `text encoder, ${textBatch} texts × ${L} tokens`;
    cell = (r) => `${f1((1000 * textBatch) / r.median_ms)} texts/s (${f1(r.median_ms)} ms)${runsOf(r)}`;
  }
  if (!withInt8) out(`| ${label} | ${cell(o)} | ${cell(p)} | ${speedup} | ${f2(load)} |`);
  else {
    const qs = q ? [cell(q), `**${f2(p.median_ms / q.median_ms)}×**`, `${f2(o.median_ms / q.median_ms)}×`] : ['–', '–', '–'];
    out(`| ${label} | ${cell(o)} | ${qs[0]} | ${cell(p)} | ${speedup} | ${qs[1]} | ${qs[2]} | ${f2(load)} |`);
  }
}
out();
if (int8Chains.length) {
  out(`The matmul chain above in int8 (the export tool's rewrite; ORT only), with the node types left after ORT's graph optimisation:`);
  out();
  out('| int8 formulation | time | effective GFLOP/s | ÷ float32 chain | nodes after optimisation |');
  out('|---|---|---|---|---|');
  for (const c of int8Chains) {
    const ops = Object.entries(c.optimisedOps).map(([k, v]) => `${v} × ${k}`).join(', ');
    out(`| ${c.format} | ${f1(c.result.median_ms)} ms | ${f1(gflops('matmul', c.result))} | ${f2(peak!.ort.median_ms / c.result.median_ms)}× faster | ${ops} |`);
  }
  out();
}
const byItem = new Map(rows.map((r) => [r.item, r]));
const pathRows = [
  ['batch 1', byItem.get('encoder_b1'), byItem.get('decoder_c4585'), 1],
  ['batch 8', byItem.get('encoder_b8'), byItem.get('decoder_b8_c4585'), 8],
] as const;
if (pathRows.some(([, e, d]) => e && d)) {
  out('Closed-set path, image encoder + tag decoder at 4,585 tags (sum of the two rows above), per image:');
  out();
  out(withInt8 ? '| | float32 | int8 | PyTorch eager | float32 speed-up | int8 speed-up |' : '| | onnxruntime | PyTorch eager | ORT ÷ PyTorch |');
  out(withInt8 ? '|---|---|---|---|---|---|' : '|---|---|---|---|');
  for (const [label, e, d, b] of pathRows) {
    if (!e || !d) continue;
    const per = (x: Timing, y: Timing) => (x.median_ms + y.median_ms) / b;
    const [fo, fp] = [per(e.ort, d.ort), per(e.pt, d.pt)];
    const ms = (x: number) => `${f1(x)} ms`;
    if (withInt8 && e.int8 && d.int8) {
      const fq = per(e.int8, d.int8);
      out(`| ${label} | ${ms(fo)} | ${ms(fq)} | ${ms(fp)} | ${f2(fp / fo)}× | **${f2(fp / fq)}×** |`);
    } else out(`| ${label} | ${ms(fo)} | ${ms(fp)} | ${f2(fp / fo)}× |`);
  }
  out();
}
out(
  `Achieved GFLOP/s against each side's matmul peak above (analytic FLOPs, formulas in bench/onnx-vs-pytorch.ts: ` +
    `image encoder ${f1(encFlop / 1e9)} GFLOP per image, decoder ${f1(decFlop(4585) / 1e9)} GFLOP at 4,585 tags, ` +
    `text encoder ${f1(txtFlop / 1e9)} GFLOP per ${textBatch} × ${L}):`,
);
out();
const peakOrt = peak && gflops('matmul', peak.ort);
const peakPt = peak && gflops('matmul', peak.pt);
const peakBest = peakOrt && peakPt ? Math.max(peakOrt, peakPt) : undefined;
out('| | onnxruntime GFLOP/s | % of ORT (MLAS) peak | % of the best peak | PyTorch GFLOP/s | % of PyTorch (OpenBLAS) peak |');
out('|---|---|---|---|---|---|');
const pct = (x: number, p: number | undefined) => (p ? `${Math.round((100 * x) / p)} %` : '–');
for (const { item, ort: o, pt: p } of rows) {
  if (item === 'matmul' || item === 'decoder_c100' || item === 'decoder_c1000') continue;
  const label =
    item === 'text' ? `text encoder` : item.startsWith('encoder') ? `image encoder, batch ${item.slice(9)}` : `tag decoder, batch ${decoderItem(item)[0]}, ${decoderItem(item)[1].toLocaleString('en')} tags`;
  out(
    `| ${label} | ${f1(gflops(item, o))} | ${pct(gflops(item, o), peakOrt)} | ${pct(gflops(item, o), peakBest)} | ` +
      `${f1(gflops(item, p))} | ${pct(gflops(item, p), peakPt)} |`,
  );
}
out();
const loads = Object.entries(sessionLoadMs).map(([g, ms]) => `${g} ${f1(ms / 1000)} s`);
if (loads.length) out(`ORT session creation (optimisation "all"): ${loads.join(', ')}.`);
out();
process.stdout.write(`${lines.join('\n')}\n`);
if (args.json) {
  writeFileSync(
    args.json,
    JSON.stringify({ date: startedAt.toISOString(), uptimeAtStart, uptimeAtEnd, seconds, pytorch: pyInfo, rows, int8Chains, sessionLoadMs, flops: { encoder: encFlop, decoder4585: decFlop(4585), text: txtFlop } }, null, 1),
  );
}
