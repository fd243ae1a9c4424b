import { readFileSync, rmSync, writeFileSync, appendFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import { loadBuiltinVocabulary } from '../../src/inference/pack/builtin-vocabulary.ts';
import { hasRandomWeights } from '../../src/inference/pack/manifest.ts';
import { openModelPack, sha256File } from '../../src/inference/pack/pack.ts';
import { copyPack, maxAbsDiff, testPackDir } from './helpers.ts';

const packDir = testPackDir();
if (!packDir) console.warn('pack tests skipped: no test pack (packs/tiny absent and the fixture pack cannot be built)');

describe.skipIf(!packDir)('model pack validation', () => {
  const copies: string[] = [];
  const damaged = () => {
    const dir = copyPack(packDir!);
    copies.push(dir);
    return dir;
  };
  const manifestOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const writeManifest = (dir: string, m: unknown) => writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
  afterEach(() => {
    for (const d of copies.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function expectPackError(dir: string, file: string, pattern: RegExp, verify = false) {
    const err = await openModelPack(dir, { verifyChecksums: verify }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('MODEL_UNAVAILABLE');
    expect((err as AppError).details.file).toBe(file);
    expect((err as AppError).message).toContain(file);
    expect((err as AppError).message).toMatch(pattern);
  }

  it('opens the test pack and verifies every checksum', async () => {
    const pack = await openModelPack(packDir!, { verifyChecksums: true });
    expect(pack.manifest.format).toBe('omnitag-model-pack');
    expect(pack.graphPath('tagDecoder')).toBe(path.join(pack.dir, 'tag_decoder.onnx'));
  });

  it('reads whether the weights are random: the field, else createdBy.randomInit, else real', async () => {
    const dir = damaged();
    const m = manifestOf(dir);
    expect(m.randomWeights).toBe(true); // the committed demo pack says so
    expect(hasRandomWeights((await openModelPack(dir)).manifest)).toBe(true);
    const { randomWeights: _, ...older } = m; // a pack exported before the field: its provenance tells
    writeManifest(dir, older);
    expect(hasRandomWeights((await openModelPack(dir)).manifest)).toBe(true);
    writeManifest(dir, { ...older, createdBy: { ...older.createdBy, randomInit: null, seed: null } });
    expect(hasRandomWeights((await openModelPack(dir)).manifest)).toBe(false);
    writeManifest(dir, { ...older, createdBy: undefined });
    expect(hasRandomWeights((await openModelPack(dir)).manifest)).toBe(false);
    writeManifest(dir, { ...m, randomWeights: false }); // the field wins over provenance
    expect(hasRandomWeights((await openModelPack(dir)).manifest)).toBe(false);
    writeManifest(dir, { ...m, randomWeights: 'yes' });
    await expectPackError(dir, 'manifest.json', /randomWeights/);
  });

  it('names manifest.json when it is missing or is not JSON', async () => {
    const dir = damaged();
    unlinkSync(path.join(dir, 'manifest.json'));
    await expectPackError(dir, 'manifest.json', /cannot read/);
    writeFileSync(path.join(dir, 'manifest.json'), '{ not json');
    await expectPackError(dir, 'manifest.json', /not valid JSON/);
  });

  it('rejects a foreign format and a future format version', async () => {
    const dir = damaged();
    const m = manifestOf(dir);
    writeManifest(dir, { ...m, format: 'something-else' });
    await expectPackError(dir, 'manifest.json', /format is "something-else"/);
    writeManifest(dir, { ...m, formatVersion: 2 });
    await expectPackError(dir, 'manifest.json', /formatVersion 2 is not supported/);
  });

  it('lists schema problems by field', async () => {
    const dir = damaged();
    const m = manifestOf(dir);
    delete m.dims.embedDim;
    m.image.std = [0.2, 0, 0.2];
    writeManifest(dir, m);
    await expectPackError(dir, 'manifest.json', /dims\.embedDim.*image\.std|image\.std.*dims\.embedDim/);
  });

  it('names a missing graph file', async () => {
    const dir = damaged();
    unlinkSync(path.join(dir, 'tag_decoder.onnx'));
    await expectPackError(dir, 'tag_decoder.onnx', /missing/);
  });

  it('names a truncated file by its size', async () => {
    const dir = damaged();
    const file = path.join(dir, 'builtin', 'label_embeds.bin');
    writeFileSync(file, readFileSync(file).subarray(0, 100));
    await expectPackError(dir, 'builtin/label_embeds.bin', /size is 100 bytes/);
  });

  it('names a file whose sha256 does not match when checksums are verified', async () => {
    const dir = damaged();
    const file = path.join(dir, 'image_encoder.onnx');
    const bytes = readFileSync(file);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1); // same size, different content
    writeFileSync(file, bytes);
    await expect(openModelPack(dir)).resolves.toBeTruthy(); // sizes alone cannot see it
    await expectPackError(dir, 'image_encoder.onnx', /sha256 is [0-9a-f]{64}, the manifest says/, true);
  });

  it('rejects a textEncoderId that does not belong to the text encoder', async () => {
    const dir = damaged();
    writeManifest(dir, { ...manifestOf(dir), textEncoderId: 'a'.repeat(64) });
    await expectPackError(dir, 'manifest.json', /textEncoderId/);
  });

  it('rejects a built-in bank whose size disagrees with count × D × E', async () => {
    const dir = damaged();
    const m = manifestOf(dir);
    m.builtin.count += 1;
    writeManifest(dir, m);
    await expectPackError(dir, 'builtin/label_embeds.bin', /expected/);
  });

  it('fails loading the built-in vocabulary when tags.json disagrees with the count', async () => {
    const dir = damaged();
    const m = manifestOf(dir);
    const tagsFile = path.join(dir, 'builtin', 'tags.json');
    const tags = JSON.parse(readFileSync(tagsFile, 'utf8'));
    writeFileSync(tagsFile, JSON.stringify(tags.slice(1)));
    m.files['builtin/tags.json'].bytes = readFileSync(tagsFile).length;
    m.files['builtin/tags.json'].sha256 = await sha256File(tagsFile);
    writeManifest(dir, m);
    const pack = await openModelPack(dir, { verifyChecksums: true });
    await expect(loadBuiltinVocabulary(pack)).rejects.toThrow(/builtin\/tags\.json.*tags, the manifest says/);
  });

  it('loads the built-in vocabulary, converting float16 storage to the same float32 values', async () => {
    const pack = await openModelPack(packDir!);
    const fp32 = await loadBuiltinVocabulary(pack);
    const { count, descriptionsPerTag } = pack.manifest.builtin;
    expect(fp32.tags).toHaveLength(count);
    expect(fp32.bank.tagCount).toBe(count);
    expect(fp32.segment.maxDescriptions).toBe(descriptionsPerTag);
    expect(fp32.segment.precision).toBe('float32');
    expect(fp32.segment.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(fp32.bank.segments).toHaveLength(1);
    expect(fp32.bank.segments[0]).toBe(fp32.segment);
    expect(fp32.bank.thresholds[0]).toBeCloseTo(fp32.tags[0]!.threshold, 6);

    // store the same bank as float16 and compare with an independent decoding of those halves
    const dir = damaged();
    const half = toFloat16(fp32.segment.embeds as Float32Array);
    const binFile = path.join(dir, 'builtin', 'label_embeds.bin');
    writeFileSync(binFile, Buffer.from(half.bits.buffer));
    const m = manifestOf(dir);
    m.builtin.dtype = 'float16';
    m.files['builtin/label_embeds.bin'] = { bytes: half.bits.byteLength, sha256: await sha256File(binFile) };
    writeManifest(dir, m);
    const fp16 = await loadBuiltinVocabulary(await openModelPack(dir, { verifyChecksums: true }));
    expect(maxAbsDiff(fp16.segment.embeds, half.values)).toBe(0);
    expect(fp16.bank.key).not.toBe(fp32.bank.key);
  });

  it('keeps extra bytes out: a file grown after export is caught by size', async () => {
    const dir = damaged();
    appendFileSync(path.join(dir, 'tokenizer.json'), ' ');
    await expectPackError(dir, 'tokenizer.json', /size is/);
  });
});

/**
 * Float32 → float16 bits by round-to-nearest-even, and the float32 values those bits stand
 * for (computed independently of the code under test, through a DataView of the halves).
 */
function toFloat16(src: Float32Array): { bits: Uint16Array; values: Float32Array } {
  const bits = new Uint16Array(src.length);
  const values = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
    const a = Math.abs(v);
    let h: number;
    if (a < 2 ** -24 / 2) h = 0;
    else if (a < 2 ** -14) h = Math.round(a / 2 ** -24); // subnormal
    else {
      let e = Math.floor(Math.log2(a));
      let m = Math.round((a / 2 ** e - 1) * 1024);
      if (m === 1024) {
        m = 0;
        e += 1;
      }
      h = ((e + 15) << 10) | m;
    }
    bits[i] = sign | h;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    const mag = exp === 0 ? frac * 2 ** -24 : (1 + frac / 1024) * 2 ** (exp - 15);
    values[i] = sign ? -mag : mag;
  }
  return { bits, values };
}
