import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { InferenceEngine } from '../runtime/engine.ts';
import { buildLabelBank } from '../scoring/label-bank.ts';
import { descriptionWeights, type TagScores } from '../scoring/scores.ts';
import { packError, type ModelPack } from './pack.ts';
import { ClipTokenizer } from '../text/tokenizer.ts';

/**
 * Runs a pack's `selftest.json` (outputs the export tool computed with PyTorch for fixed
 * inputs) through an engine: proves that this runtime, on this machine, computes what the
 * exporter computed. Cheap enough for start-up on small packs and for `tag selftest`.
 */
export interface SelftestCheck {
  name: string;
  maxAbsDiff: number;
  tolerance: number;
  ok: boolean;
}

export interface SelftestReport {
  pack: string;
  ok: boolean;
  checks: SelftestCheck[];
}

const numbers = z.array(z.number());
const selftestSchema = z.object({
  tolerance: z.number().positive(),
  /** int8 packs: their text encoder stays float32 and keeps float32's bound. */
  textEmbedsTolerance: z.number().positive().optional(),
  pixelValues: z.object({ shape: z.tuple([z.number(), z.literal(3), z.number(), z.number()]) }),
  imageEmbedsToken0: z.array(numbers),
  builtin: z.object({ logits: z.array(numbers), descriptionWeightsFirst3: z.array(z.array(numbers)) }),
  texts: z.array(z.object({ text: z.string(), inputIds: z.array(z.number().int()), embedding: numbers })).min(5),
  openSet: z.object({ labelMask: z.array(z.array(z.boolean())), logits: z.array(numbers), descriptionWeights: z.array(z.array(numbers)) }),
});

/** The exporter's deterministic test input: ((3x + 5y + 7c + 11b) mod 17 − 8) / 4. */
export function selftestPixels(batch: number, size: number): Float32Array[] {
  return Array.from({ length: batch }, (_, b) => {
    const out = new Float32Array(3 * size * size);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) out[(c * size + y) * size + x] = (((3 * x + 5 * y + 7 * c + 11 * b) % 17) - 8) / 4;
      }
    }
    return out;
  });
}

function diff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i]! - expected[i]!));
  return m;
}

/** Returns null when the pack carries no self-test. */
export async function runPackSelftest(engine: InferenceEngine, pack: ModelPack): Promise<SelftestReport | null> {
  const file = pack.manifest.selftest;
  if (!file) return null;
  let parsed: z.infer<typeof selftestSchema>;
  try {
    parsed = selftestSchema.parse(JSON.parse(await readFile(pack.file(file), 'utf8')));
  } catch (e) {
    throw packError(pack.dir, file, `unreadable self-test: ${(e as Error).message}`, e);
  }
  const tol = parsed.tolerance;
  const checks: SelftestCheck[] = [];
  const check = (name: string, maxAbsDiff: number, tolerance = tol) =>
    checks.push({ name, maxAbsDiff, tolerance, ok: maxAbsDiff <= tolerance });
  const E = engine.info.embedDim;
  const [batch, , size] = parsed.pixelValues.shape;

  const images = await engine.encodeImages(selftestPixels(batch, size).map((pixels) => ({ pixels })));
  check('image_embeds[:, 0]', Math.max(...images.map((im, b) => diff(im.data.subarray(0, E), parsed.imageEmbedsToken0[b]!))));

  const builtin = await engine.builtinVocabulary();
  const closed = await engine.scoreImages(images, [builtin.bank], { explain: true });
  check('builtin logits', Math.max(...closed.map((s, b) => diff(s.scores[0]!.logits, parsed.builtin.logits[b]!))));
  const D = builtin.segment.maxDescriptions;
  check(
    'builtin description_weights (first 3 tags)',
    Math.max(...closed.map((s, b) => diff(paddedWeights(s.scores[0]!, 3, D), parsed.builtin.descriptionWeightsFirst3[b]!.flat()))),
  );

  const tokenizer = await ClipTokenizer.fromFile(pack.file(pack.manifest.tokenizer.file));
  const texts = parsed.texts.map((t) => t.text);
  const { ids } = tokenizer.encodeBatch(texts, pack.manifest.tokenizer.context);
  check('input_ids (exact)', diff(Array.from(ids, Number), parsed.texts.flatMap((t) => t.inputIds)), 0);

  const embedded = await engine.embedTexts(texts);
  check('text_embeds', diff(embedded.embeddings, parsed.texts.flatMap((t) => t.embedding)), parsed.textEmbedsTolerance ?? tol);

  // open set as the exporter built it: tag 0 ← texts 0–1, tag 1 ← texts 2–3, tag 2 ← text 4 (+ padding)
  const row = (i: number) => embedded.embeddings.subarray(i * E, (i + 1) * E);
  const openBank = buildLabelBank({
    key: `selftest:${pack.manifest.textEncoderId}`,
    embedDim: E,
    tags: [[row(0), row(1)], [row(2), row(3)], [row(4)]].map((descriptions) => ({ descriptions, threshold: 0.5 })),
  });
  const open = await engine.scoreImages(images, [openBank], { explain: true });
  check('open-set logits', Math.max(...open.map((s, b) => diff(s.scores[0]!.logits, parsed.openSet.logits[b]!))));
  check(
    'open-set description_weights',
    Math.max(...open.map((s, b) => diff(paddedWeights(s.scores[0]!, 3, openBank.segments[0]!.maxDescriptions), parsed.openSet.descriptionWeights[b]!.flat()))),
  );
  return { pack: pack.manifest.name, ok: checks.every((c) => c.ok), checks };
}

/** The first `tags` tags' description weights, each padded with zeros to `width` as the reference stores them. */
function paddedWeights(scores: TagScores, tags: number, width: number): number[] {
  const out = new Float32Array(tags * width);
  for (let c = 0; c < tags; c++) out.set(descriptionWeights(scores, c), c * width);
  return Array.from(out);
}
