/**
 * Image intake at 384×384: the exact (Pillow-identical) path against Pillow + torchvision on the
 * same files, and what intake costs the main thread.
 *   npx tsx bench/preprocess.bench.ts [--threads 2] [--images 16]
 * Images: a generated 4000×3000 (12 MP) baseline JPEG, plus the shared photos when present.
 *
 * 1. One image at a time, one thread, best of 5: the exact path with the C resampler passes
 *    (`exactMs`) and with the JavaScript ones (`exactJsMs`, the path before the C passes), fast
 *    mode, and the parts (full-size decode, each resampler, normalisation); then
 *    bench/preprocess_pillow.py on the same files (`pillowMs`, torch at one thread) and the
 *    ratio exact / Pillow.
 * 2. Saturated intake, N threads: `--images` copies of the 12 MP JPEG at once through the
 *    intake threads (N of them) and, for comparison, the old way on the main thread (JavaScript
 *    passes yielding between slices), twice: first for images/s, the main thread's CPU time per
 *    image (its own /proc entry, in 10 ms ticks over all the images) and its event loop's
 *    active time per image (which also counts time the thread was runnable but not running, on
 *    a loaded machine); then for the event-loop delay (monitorEventLoopDelay, 1 ms resolution,
 *    whose timer would add its own cost to the first pass). Pillow's throughput with N
 *    processes comes from the Python script.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DEFAULT_IMAGE_LIMITS } from '../src/inference/image/limits.ts';
import { preprocessImage, writeNormalizedChw, type PreprocessOptions } from '../src/inference/image/preprocess.ts';
import { defaultResampleImplementation, resizeBilinearAntialias } from '../src/inference/image/resample.ts';
import { IntakePool } from '../src/inference/runtime/intake-pool.ts';
import { silentLogger } from '../src/inference/runtime/sessions.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = process.env.OMNITAG_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared');
const { values: args } = parseArgs({ options: { threads: { type: 'string' }, images: { type: 'string' } } });
const threads = Number(args.threads ?? 2);
const saturating = Number(args.images ?? 16);
const spec = { size: 384, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
if (defaultResampleImplementation !== 'native') console.warn('the native resampler is not built (npm run build:native): exactMs is the JavaScript path');

async function generated12mp(): Promise<Buffer> {
  const w = 4000;
  const h = 3000;
  const raw = Buffer.alloc(w * h * 3);
  let s = 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const n = (s >>> 24) & 31;
      raw.set([(x * 255) / w + n, (y * 255) / h + n, ((x ^ y) & 255) / 2 + n], (y * w + x) * 3);
    }
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

async function best(fn: () => unknown, runs = 5): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t);
  }
  return Math.round(min * 10) / 10;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-preprocess-bench-'));
const files: [string, string][] = [['generated 4000x3000 baseline JPEG', path.join(tmp, 'generated-12mp.jpg')]];
writeFileSync(files[0]![1], await generated12mp());
for (const f of ['1641173_2291260800.jpg', 'demo2.jpg', 'openset_example.jpg']) {
  const p = path.join(shared, 'data', 'images', f);
  if (existsSync(p)) files.push([f, p]);
}

// 1. one image at a time, one thread
const rows: Record<string, unknown>[] = [];
for (const [name, file] of files) {
  const bytes = readFileSync(file);
  const meta = await sharp(bytes).metadata();
  const row: Record<string, unknown> = { image: name, size: `${meta.width}x${meta.height}` };
  const exact = (o: PreprocessOptions) => () => preprocessImage(bytes, spec, DEFAULT_IMAGE_LIMITS, o);
  row.exactMs = await best(exact({}));
  row.exactJsMs = await best(exact({ resampler: 'js' }));
  row.fastMs = await best(exact({ resize: 'fast' }));
  // the parts of exact mode: full-size decode as the pipeline reads it, the resampler, normalisation
  const decoded = await sharp(bytes, { sequentialRead: true, ignoreIcc: true }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  row.decodeMs = await best(() => sharp(bytes, { sequentialRead: true, ignoreIcc: true }).removeAlpha().toColourspace('srgb').raw().toBuffer());
  const image = { data: decoded.data, width: decoded.info.width, height: decoded.info.height };
  row.resampleNativeMs = defaultResampleImplementation === 'native' ? await best(() => resizeBilinearAntialias(image, 384, 384, 'native')) : null;
  row.resampleJsMs = await best(() => resizeBilinearAntialias(image, 384, 384, 'js'));
  const square = resizeBilinearAntialias(image, 384, 384).data;
  const out = new Float32Array(3 * 384 * 384);
  row.normalizeMs = await best(() => writeNormalizedChw(square, spec, out));
  rows.push(row);
}

// the same files through Pillow + torchvision (one thread), then its N-process throughput
const python = execFileSync('/usr/bin/python3', [path.join(repoRoot, 'bench', 'preprocess_pillow.py'), '--threads', String(threads), ...files.map(([, f]) => f)], {
  encoding: 'utf8',
  env: { ...process.env, OMP_NUM_THREADS: '1' },
});
const pyRows = python.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
for (const [i, row] of rows.entries()) {
  const py = pyRows.find((r) => r.file === files[i]![1])!;
  Object.assign(row, { pillowMs: py.pillowMs, pillowHeldMs: py.pillowHeldMs, pillowDecodeMs: py.pillowDecodeMs, pillowResizeMs: py.pillowResizeMs });
  row.exactOverPillow = Math.round(((row.exactMs as number) / (py.pillowMs as number)) * 100) / 100;
  row.exactOverPillowHeld = Math.round(((row.exactMs as number) / (py.pillowHeldMs as number)) * 100) / 100;
  console.log(JSON.stringify(row));
}

// 2. saturated intake: the 12 MP JPEG, `saturating` at once
const bytes12 = readFileSync(files[0]![1]);
/** CPU time of the main thread alone (Linux: its own /proc entry; clock ticks of 10 ms). */
function mainThreadCpuMs(): number {
  const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
}
async function saturate(name: string, run: (b: Uint8Array) => Promise<unknown>): Promise<void> {
  // warm: threads started, code compiled on both sides
  for (let k = 0; k < 2; k++) await Promise.all(Array.from({ length: 2 * threads }, () => run(bytes12)));
  // two passes: the delay monitor's 1 ms timer costs the main thread CPU itself, so the main
  // thread's time is measured in a pass without it
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = mainThreadCpuMs();
  const t = performance.now();
  await Promise.all(Array.from({ length: saturating }, () => run(bytes12)));
  const wall = performance.now() - t;
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = mainThreadCpuMs() - cpu0;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  await Promise.all(Array.from({ length: saturating }, () => run(bytes12)));
  delay.disable();
  const ms = (ns: number) => Math.round(ns / 1e5) / 10;
  console.log(
    JSON.stringify({
      saturated: name,
      threads,
      images: saturating,
      imagesPerSecond: Math.round((saturating / wall) * 1000 * 100) / 100,
      mainThreadCpuMsPerImage: Math.round((cpu / saturating) * 10) / 10,
      eventLoopActiveMsPerImage: Math.round((elu.active / saturating) * 10) / 10,
      eventLoopDelayMs: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
    }),
  );
}
const pool = new IntakePool({ size: threads, init: { spec, limits: DEFAULT_IMAGE_LIMITS, options: {} }, logger: silentLogger });
await saturate(`intake threads (${threads})`, (b) => pool.preprocess(b));
await pool.dispose();
await saturate('main thread, JavaScript passes (before)', (b) => preprocessImage(b, spec, DEFAULT_IMAGE_LIMITS, { resampler: 'js' }));
for (const r of pyRows.filter((r) => !('file' in r) || r.throughput)) console.log(JSON.stringify(r));
console.log(JSON.stringify({ node: process.version, sharp: sharp.versions.sharp, vips: sharp.versions.vips, concurrency: sharp.concurrency(), resampler: defaultResampleImplementation, loadavg: os.loadavg() }));
rmSync(tmp, { recursive: true, force: true });
