/**
 * What storing image encodings costs and changes: bytes per stored encoding ([T, E] as float16
 * or float32), and how far scores re-computed from a stored encoding drift from the fresh
 * scores of the same image, against the pack's built-in vocabulary (every tag).
 * Images: the photos of ../shared/data/images when present, plus seeded noise images.
 * Usage: npx tsx bench/library-encoding.bench.ts [--pack packs/tiny] [--noise 4]
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import sharp from 'sharp';
import { createLocalInferenceEngine } from '../src/inference/index.ts';
import { packEncoding, unpackEncoding } from '../src/library/index.ts';

const opts = new Command().option('--pack <dir>', 'model pack', 'packs/tiny').option('--noise <n>', 'noise images besides the photos', '4').parse().opts();

async function images(): Promise<{ name: string; bytes: Uint8Array }[]> {
  const out: { name: string; bytes: Uint8Array }[] = [];
  const dir = path.resolve('..', 'shared', 'data', 'images');
  for (const f of await fs.readdir(dir).catch(() => [] as string[])) out.push({ name: f, bytes: await fs.readFile(path.join(dir, f)) });
  for (let i = 0; i < Number(opts.noise); i++) {
    const px = Buffer.alloc(256 * 192 * 3);
    let x = i * 7919 + 17;
    for (let k = 0; k < px.length; k++) px[k] = (x = (x * 1103515245 + 12345) % 2147483648) >>> 23;
    out.push({ name: `noise-${i}`, bytes: await sharp(px, { raw: { width: 256, height: 192, channels: 3 } }).png().toBuffer() });
  }
  return out;
}

const engine = await createLocalInferenceEngine({ packDir: path.resolve(opts.pack), workers: 1, warmup: false });
const info = await engine.start();
const { bank } = await engine.builtinVocabulary();
const T = info.imageTokens;
const E = info.embedDim;
let d32 = 0;
let d16 = 0;
let p16 = 0;
let flips = 0;
let passedTotal = 0;
const list = await images();
for (const { bytes } of list) {
  const [fresh] = await engine.scoreImages([bytes], [bank]);
  const s0 = fresh!.scores[0]!;
  for (const dtype of ['float32', 'float16'] as const) {
    const [again] = await engine.scoreImages([unpackEncoding(packEncoding(fresh!.embeddings, dtype, info.imageEncoderId), info)], [bank]);
    const s = again!.scores[0]!;
    for (let c = 0; c < s.tagCount; c++) {
      const dl = Math.abs(s.logits[c]! - s0.logits[c]!);
      if (dtype === 'float32') d32 = Math.max(d32, dl);
      else {
        d16 = Math.max(d16, dl);
        p16 = Math.max(p16, Math.abs(s.probabilities[c]! - s0.probabilities[c]!));
        if (s.passed[c] !== s0.passed[c]) flips++;
        passedTotal += s0.passed[c]!;
      }
    }
  }
}
await engine.dispose();
console.log(`| pack | T × E | float16 bytes | float32 bytes | images × tags | max abs Δlogit float32 | max abs Δlogit float16 | max abs Δprob float16 | pass/fail flips float16 (of passed) |`);
console.log(`|---|---|---|---|---|---|---|---|---|`);
console.log(`| ${info.packName} | ${T} × ${E} | ${T * E * 2} | ${T * E * 4} | ${list.length} × ${bank.tagCount} | ${d32.toExponential(2)} | ${d16.toExponential(2)} | ${p16.toExponential(2)} | ${flips} (${passedTotal}) |`);
