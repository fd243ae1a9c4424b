/**
 * Preprocessing cost per image at 384×384, exact (Pillow-identical) vs fast (libvips):
 *   npx tsx bench/preprocess.bench.ts
 * Images: a generated 4000×3000 (12 MP) baseline JPEG, plus the shared photos when present
 * (a 3216×4288 progressive... see inputs.json). Best of 5 runs each, one at a time.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { DEFAULT_IMAGE_LIMITS } from '../src/inference/image/limits.ts';
import { preprocessImage, type ResizeMode } from '../src/inference/image/preprocess.ts';
import { resizeBilinearAntialias } from '../src/inference/image/resample.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = process.env.OMNITAG_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared');
const spec = { size: 384, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

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

async function best(fn: () => Promise<unknown>, runs = 5): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t);
  }
  return Math.round(min);
}

const images: [string, Buffer][] = [['generated 4000x3000 baseline JPEG', await generated12mp()]];
for (const f of ['1641173_2291260800.jpg', 'demo2.jpg', 'openset_example.jpg']) {
  const p = path.join(shared, 'data', 'images', f);
  if (existsSync(p)) images.push([f, readFileSync(p)]);
}

for (const [name, bytes] of images) {
  const meta = await sharp(bytes).metadata();
  const row: Record<string, unknown> = { image: name, size: `${meta.width}x${meta.height}`, progressive: meta.isProgressive };
  for (const mode of ['exact', 'fast'] as ResizeMode[]) {
    row[`${mode}Ms`] = await best(() => preprocessImage(bytes, spec, DEFAULT_IMAGE_LIMITS, { resize: mode }));
  }
  // the parts of exact mode: full-size decode (read as the pipeline reads: sequential, ICC ignored), then the resampler
  const decoded = await sharp(bytes, { sequentialRead: true, ignoreIcc: true }).raw().toBuffer({ resolveWithObject: true });
  row.decodeMs = await best(() => sharp(bytes, { sequentialRead: true, ignoreIcc: true }).raw().toBuffer());
  row.resampleMs = await best(async () =>
    resizeBilinearAntialias({ data: decoded.data, width: decoded.info.width, height: decoded.info.height }, 384, 384),
  );
  console.log(JSON.stringify(row));
}
console.log(JSON.stringify({ node: process.version, sharp: sharp.versions.sharp, vips: sharp.versions.vips, concurrency: sharp.concurrency() }));
