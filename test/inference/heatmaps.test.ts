import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import type { ImagePixels } from '../../src/inference/runtime/engine.ts';
import { buildLabelBank, type LabelBank } from '../../src/inference/scoring/label-bank.ts';
import { createLocalInferenceEngine, type LocalInferenceEngine } from '../../src/inference/runtime/local-engine.ts';
import { copyPack, maxAbsDiff, randomUnitRows, seededRandom, testPackDir } from './helpers.ts';

const packDir = testPackDir();
const hasMaps = packDir !== null && JSON.parse(readFileSync(path.join(packDir, 'manifest.json'), 'utf8')).heatmaps !== undefined;
const rand = seededRandom(11);
const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);

describe.skipIf(!hasMaps)('heat maps (second decoder pass, real onnxruntime)', () => {
  let engine: LocalInferenceEngine;
  let bank: LabelBank;
  let image: ImagePixels;

  beforeAll(async () => {
    engine = await createLocalInferenceEngine({ packDir: packDir!, intraOpThreads: 1, maxWaitMs: 1 });
    await engine.start();
    const E = engine.info.embedDim;
    const S = engine.info.imageSize;
    image = { pixels: Float32Array.from({ length: 3 * S * S }, () => rand() * 4 - 2) };
    // ragged: 1..4 descriptions per tag, so the gathered rows need padding and a mask
    bank = buildLabelBank({
      key: 'hm-test',
      embedDim: E,
      tags: Array.from({ length: 12 }, (_, c) => ({ descriptions: randomUnitRows(1 + (c % 4), E, rand), threshold: 0.5 })),
    });
  });
  afterAll(() => engine?.dispose());

  it('says the grid the pack derives from its image size and patching', () => {
    const m = JSON.parse(readFileSync(path.join(packDir!, 'manifest.json'), 'utf8'));
    const grid = engine.info.heatmaps!;
    expect(grid.width * grid.height + 1).toBe(m.dims.imageTokens);
    // Swin: patch, then a 2× merge between stages
    expect(grid.width).toBe(m.image.size / (m.dims.swin.patch * 2 ** (m.dims.swin.depths.length - 1)));
    expect(grid.layers).toBe(m.dims.decoderLayers);
  });

  it('scoring never runs the heat-map graph; asking runs it once for the asked tags only', async () => {
    const before = engine.stats().runs;
    const [scored] = await engine.scoreImages([image], [bank], { explain: true });
    const afterScoring = engine.stats().runs;
    expect(afterScoring.tagDecoder).toBeGreaterThan(before.tagDecoder);
    expect(afterScoring.heatmapDecoder).toBe(before.heatmapDecoder);

    const maps = await engine.heatmaps(scored!.embeddings, bank, [5, 2, 9]);
    expect(engine.stats().runs.heatmapDecoder).toBe(afterScoring.heatmapDecoder + 1);
    expect(engine.stats().runs.tagDecoder).toBe(afterScoring.tagDecoder);
    expect(maps.map((m) => m.tag)).toEqual([5, 2, 9]);
    const { width, height, layers } = engine.info.heatmaps!;
    for (const m of maps) {
      expect([m.width, m.height]).toEqual([width, height]);
      expect(m.values).toHaveLength(width * height);
      expect(m.layers).toHaveLength(layers);
      expect(m.cls).toBeGreaterThanOrEqual(0);
      expect(m.cls).toBeLessThanOrEqual(1);
      expect(sum(m.values)).toBeCloseTo(1, 5);
      for (const l of m.layers) expect(sum(l.values)).toBeCloseTo(1, 5);
      // the combined map is the mean of the layers' probabilities, renormalised over the grid
      const meanGrid = m.values.map((_, k) => sum(m.layers.map((l) => l.values[k]! * (1 - l.cls))) / layers);
      expect(maxAbsDiff(m.values.map((v) => v * (1 - m.cls)), meanGrid)).toBeLessThan(1e-6);
      expect(m.cls).toBeCloseTo(sum(m.layers.map((l) => l.cls)) / layers, 6);
    }
    // maps differ between tags (random weights, but not constant)
    expect(maxAbsDiff(maps[0]!.values, maps[1]!.values)).toBeGreaterThan(1e-4);
  });

  it('a tag’s map does not depend on which other tags are asked with it', async () => {
    const [scored] = await engine.scoreImages([image], [bank]);
    const together = await engine.heatmaps(scored!.embeddings, bank, [0, 3, 7, 11]);
    const alone = await engine.heatmaps(scored!.embeddings, bank, [7]);
    expect(maxAbsDiff(together[2]!.values, alone[0]!.values)).toBeLessThan(1e-6);
    expect(Math.abs(together[2]!.cls - alone[0]!.cls)).toBeLessThan(1e-6);
  });

  it('reads float16 segments as well (rows widened when gathered)', async () => {
    const E = engine.info.embedDim;
    const rows = Array.from({ length: 4 }, (_, c) => randomUnitRows(1 + c, E, rand));
    const make = (precision: 'float32' | 'float16') =>
      buildLabelBank({ key: `hm-${precision}`, embedDim: E, precision, tags: rows.map((descriptions) => ({ descriptions, threshold: 0.5 })) });
    const [scored] = await engine.scoreImages([image], [bank]);
    const [a, b] = await Promise.all([engine.heatmaps(scored!.embeddings, make('float32'), [3, 1]), engine.heatmaps(scored!.embeddings, make('float16'), [3, 1])]);
    for (let i = 0; i < 2; i++) expect(maxAbsDiff(a[i]!.values, b[i]!.values)).toBeLessThan(1e-3);
  });

  it('refuses tags outside the bank and embeddings of another pack', async () => {
    const [scored] = await engine.scoreImages([image], [bank]);
    const bad = await engine.heatmaps(scored!.embeddings, bank, [12]).catch((e: AppError) => e);
    expect(bad).toBeInstanceOf(AppError);
    expect((bad as AppError).code).toBe('BAD_USER_INPUT');
    const foreign = { ...scored!.embeddings, packName: 'another-pack' };
    await expect(engine.heatmaps(foreign, bank, [1])).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(await engine.heatmaps(scored!.embeddings, bank, [])).toEqual([]);
  });
});

describe.skipIf(!hasMaps)('a pack without the heat-map graph', () => {
  let dir: string;
  let engine: LocalInferenceEngine;
  beforeAll(async () => {
    dir = copyPack(packDir!);
    const file = path.join(dir, 'manifest.json');
    const m = JSON.parse(readFileSync(file, 'utf8'));
    rmSync(path.join(dir, m.heatmaps.graph));
    delete m.files[m.heatmaps.graph];
    delete m.heatmaps;
    writeFileSync(file, JSON.stringify(m));
    engine = await createLocalInferenceEngine({ packDir: dir, intraOpThreads: 1 });
    await engine.start();
  });
  afterAll(async () => {
    await engine?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('scores as before, says it has no maps and refuses them with a typed error', async () => {
    expect(engine.info.heatmaps).toBeNull();
    const builtin = await engine.builtinVocabulary();
    const S = engine.info.imageSize;
    const [scored] = await engine.scoreImages([{ pixels: new Float32Array(3 * S * S).fill(0.25) }], [builtin.bank]);
    expect(scored!.scores[0]!.logits).toHaveLength(builtin.bank.tagCount);
    await expect(engine.heatmaps(scored!.embeddings, builtin.bank, [0])).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(engine.stats().runs.heatmapDecoder).toBe(0);
  });
});
