/**
 * What storing a bank segment as float16 costs in logits: the pack's built-in rows scored as
 * float32 and as a float16 copy, on the shared photos, through the engine (decoder only).
 *
 *   OMNITAG_MODEL_PACK=packs/full npx tsx bench/segment-precision.bench.ts
 *
 * Prints max and mean |Δ logit|, and how many tags changed their passed/failed verdict.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildSegment, createLocalInferenceEngine, singleSegmentBank, tagEmbeddings, type TagScores } from '../src/inference/index.ts';

const packDir = path.resolve(process.env.OMNITAG_MODEL_PACK ?? 'packs/tiny');
const imagesDir = path.resolve(process.env.BENCH_IMAGES ?? '../shared/data/images');

const engine = await createLocalInferenceEngine({ packDir });
await engine.start();
const builtin = await engine.builtinVocabulary();
const t0 = performance.now();
const half = buildSegment({
  key: `${builtin.segment.key}:float16`,
  embedDim: builtin.segment.embedDim,
  maxDescriptions: builtin.segment.maxDescriptions,
  precision: 'float16',
  tags: builtin.tags.map((_, i) => tagEmbeddings(builtin.bank, i)),
});
const convertMs = performance.now() - t0;
const halfBank = singleSegmentBank('builtin:float16', half, builtin.bank.thresholds);

const files = (await readdir(imagesDir)).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort();
let worst = 0;
let sum = 0;
let count = 0;
let flipped = 0;
let passed = 0;
for (const file of files) {
  const bytes = new Uint8Array(await readFile(path.join(imagesDir, file)));
  const [scored] = await engine.scoreImages([bytes], [builtin.bank, halfBank]);
  const [f32, f16] = scored!.scores as [TagScores, TagScores];
  let imageWorst = 0;
  for (let c = 0; c < f32.tagCount; c++) {
    const d = Math.abs(f32.logits[c]! - f16.logits[c]!);
    imageWorst = Math.max(imageWorst, d);
    sum += d;
    count++;
    if (f32.passed[c] !== f16.passed[c]) flipped++;
    passed += f32.passed[c]!;
  }
  worst = Math.max(worst, imageWorst);
  console.log(`${file}: max |Δ logit| ${imageWorst.toExponential(2)}`);
}
console.log(`\npack ${path.basename(packDir)} (${builtin.segment.tagCount} tags × ${builtin.segment.maxDescriptions} × ${builtin.segment.embedDim}), ${files.length} images`);
console.log(`float16 copy: ${(half.embeds.byteLength / 2 ** 20).toFixed(0)} MiB (float32: ${(builtin.segment.embeds.byteLength / 2 ** 20).toFixed(0)} MiB), built in ${convertMs.toFixed(0)} ms`);
console.log(`max |Δ logit| ${worst.toExponential(2)}, mean ${(sum / count).toExponential(2)}; verdicts changed: ${flipped} of ${count} (${passed} passed in float32)`);
await engine.dispose();
