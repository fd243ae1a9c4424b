/**
 * Fidelity to upstream RAM++: a pack exported from ../shared/reference/upstream-tiny must give
 * the logits the upstream implementation computed (max |Δ| ≤ 1e-4, the reference's own bound).
 * Runs when OMNITAG_REFERENCE_PACK points to such a pack, or packs/reference-tiny exists
 * (e.g. `python3 tools/export --ram-checkpoint …/ram_plus_tiny.pth --clip …/clip_tiny_jit.pt
 * --tags <first 12 tags> --thresholds <their thresholds> --bpe … --out packs/reference-tiny`).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinVocabulary } from '../../src/inference/pack/builtin-vocabulary.ts';
import { buildLabelBank } from '../../src/inference/scoring/label-bank.ts';
import { ModelRunner } from '../../src/inference/runtime/model-runner.ts';
import { readNpy } from '../../src/inference/pack/npy.ts';
import { openModelPack, type ModelPack } from '../../src/inference/pack/pack.ts';
import { makeTagScores } from '../../src/inference/scoring/scores.ts';
import { maxAbsDiff, repoRoot, sharedDir } from './helpers.ts';

const referenceDir = path.join(sharedDir, 'reference', 'upstream-tiny');
const packDir = process.env.OMNITAG_REFERENCE_PACK ?? path.join(repoRoot, 'packs', 'reference-tiny');
const ready = existsSync(path.join(referenceDir, 'logits_closed.npy')) && existsSync(path.join(packDir, 'manifest.json'));
if (!ready) console.warn(`reference parity skipped: needs ${referenceDir} and a pack exported from it at ${packDir} (or OMNITAG_REFERENCE_PACK)`);

const TOLERANCE = 1e-4;
const npy = (name: string) => readNpy(path.join(referenceDir, name));
const f32 = (name: string) => npy(name).data as Float32Array;

describe.skipIf(!ready)('parity with upstream RAM++ (upstream-tiny reference)', () => {
  let pack: ModelPack;
  let runner: ModelRunner;
  let imageEmbeds: Float32Array;
  const B = 6;

  beforeAll(async () => {
    pack = await openModelPack(packDir, { verifyChecksums: true });
    runner = new ModelRunner(pack, { provider: 'cpu', cudaDeviceId: 0, intraOpThreads: 1 });
    imageEmbeds = await runner.encodeImages(f32('pixel_values.npy'), B);
  });
  afterAll(() => runner?.dispose());

  it('encodes the reference pixels to the reference image embeddings', () => {
    expect(maxAbsDiff(imageEmbeds, f32('image_embeds.npy'))).toBeLessThanOrEqual(TOLERANCE);
  });

  it('reproduces the closed-set logits, weights and tags with the pack\'s built-in vocabulary', async () => {
    const builtin = await loadBuiltinVocabulary(pack);
    expect([builtin.bank.tagCount, builtin.segment.maxDescriptions]).toEqual([12, 7]);
    const out = await runner.decode(imageEmbeds, B, builtin.segment, { chunkTags: 5, explain: true });
    expect(maxAbsDiff(out.logits, f32('logits_closed.npy'))).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(out.weights!, f32('description_weights_closed.npy'))).toBeLessThanOrEqual(TOLERANCE);

    const expected = JSON.parse(readFileSync(path.join(referenceDir, 'tags_closed.json'), 'utf8')) as Array<{ tag_indices: number[] }>;
    for (let b = 0; b < B; b++) {
      const scores = makeTagScores(builtin.bank, out.logits.subarray(b * 12, (b + 1) * 12));
      const passed = [...scores.passed.keys()].filter((c) => scores.passed[c] === 1);
      expect(passed).toEqual(expected[b]!.tag_indices);
    }
  });

  it('reproduces the open-set logits from the reference text embeddings', async () => {
    const bank = buildLabelBank({
      key: 'reference-open',
      embedDim: 512,
      tags: Array.from({ length: 12 }, (_, c) => ({ descriptions: f32('text_embeds.npy').slice(c * 7 * 512, (c + 1) * 7 * 512), threshold: 0.5 })),
    });
    const out = await runner.decode(imageEmbeds, B, bank.segments[0]!, { chunkTags: 1024, explain: true });
    expect(maxAbsDiff(out.logits, f32('logits_open.npy'))).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(out.weights!, f32('description_weights_open.npy'))).toBeLessThanOrEqual(TOLERANCE);
  });

  it('encodes the reference tokens to the reference text embeddings', async () => {
    const tokens = npy('text_tokens.npy');
    const ids = BigInt64Array.from(tokens.data as Int32Array, (v) => BigInt(v));
    const embeds = await runner.encodeTexts(ids, tokens.shape[0]!);
    expect(maxAbsDiff(embeds, f32('text_embeds.npy'))).toBeLessThanOrEqual(TOLERANCE);
  });
});
