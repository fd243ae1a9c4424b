/**
 * Image intake on worker threads (runtime/intake-pool.ts) and the resampler's C passes: the
 * same pixels as the calling thread's JavaScript path, bit for bit; a crashed intake thread
 * fails only its image and is replaced; the engine is warm before it reports ready.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import { buildLabelBank, createLocalInferenceEngine } from '../../src/inference/index.ts';
import { DEFAULT_IMAGE_LIMITS } from '../../src/inference/image/limits.ts';
import { preprocessImage, type ImageSource } from '../../src/inference/image/preprocess.ts';
import { defaultResampleImplementation, jpegResizedNative, resizeBilinearAntialias } from '../../src/inference/image/resample.ts';
import { IntakePool } from '../../src/inference/runtime/intake-pool.ts';
import { silentLogger } from '../../src/inference/runtime/sessions.ts';
import { hasShared, seededRandom, sharedDir, testPackDir } from './helpers.ts';

const spec = { size: 384, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const photos = hasShared
  ? ['1641173_2291260800.jpg', 'demo2.jpg', 'demo4.jpg', 'openset_example.jpg'].map((f) => path.join(sharedDir, 'data', 'images', f))
  : [];
if (!hasShared) console.warn(`intake tests: ${sharedDir} is absent; the shared photos are skipped (generated images still run)`);
const packDir = testPackDir();

/** Float32 arrays compared as their bit patterns: equal values, -0 and NaN alike. */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

async function generatedImages(): Promise<[string, Buffer][]> {
  const rand = seededRandom(5);
  const raw = (w: number, h: number, c: number) => Buffer.from(Array.from({ length: w * h * c }, () => Math.floor(rand() * 256)));
  const rgb = { raw: { width: 640, height: 480, channels: 3 as const } };
  return [
    ['JPEG 640×480', await sharp(raw(640, 480, 3), rgb).jpeg({ quality: 85 }).toBuffer()],
    ['JPEG with EXIF orientation 6', await sharp(raw(640, 480, 3), rgb).withMetadata({ orientation: 6 }).jpeg().toBuffer()],
    ['RGBA PNG 300×500', await sharp(raw(300, 500, 4), { raw: { width: 300, height: 500, channels: 4 } }).png().toBuffer()],
    ['grey PNG 257×129', await sharp(raw(257, 129, 1), { raw: { width: 257, height: 129, channels: 1 } }).png().toBuffer()],
    ['upscaled WebP 100×60', await sharp(raw(100, 60, 3), { raw: { width: 100, height: 60, channels: 3 } }).webp({ lossless: true }).toBuffer()],
  ];
}

const pools: IntakePool[] = [];
afterAll(() => Promise.all(pools.map((p) => p.dispose())));
function pool(workerUrl?: URL): IntakePool {
  const p = new IntakePool({ size: 2, init: { spec, limits: DEFAULT_IMAGE_LIMITS, options: {} }, logger: silentLogger, workerUrl });
  pools.push(p);
  return p;
}

describe.runIf(defaultResampleImplementation === 'native')('the C resampler', () => {
  it.skipIf(!hasShared)('gives the bytes of the JavaScript passes on the shared photos, down, up and mixed', async () => {
    for (const file of photos) {
      const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
      const image = { data, width: info.width, height: info.height };
      for (const [w, h] of [[384, 384], [224, 224], [517, 97], [info.width, 300], [info.width + 300, 41]] as const) {
        const js = resizeBilinearAntialias(image, w, h, 'js');
        const native = resizeBilinearAntialias(image, w, h, 'native');
        expect(Buffer.compare(native.data, js.data), `${path.basename(file)} → ${w}×${h}`).toBe(0);
      }
    }
  });
});

describe.runIf(defaultResampleImplementation === 'native')('JPEGs decoded row by row into the resampler (libjpeg-turbo in the addon)', () => {
  const wholeThenResized = async (bytes: Buffer, w: number, h: number) => {
    const { data, info } = await sharp(bytes, { ignoreIcc: true }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    return resizeBilinearAntialias({ data, width: info.width, height: info.height }, w, h, 'js').data;
  };

  it('gives the bytes of a whole decode then the JavaScript passes, for the JPEG variants and photos', async () => {
    const rand = seededRandom(9);
    const raw = Buffer.from(Array.from({ length: 700 * 500 * 3 }, () => Math.floor(rand() * 256)));
    const base = () => sharp(raw, { raw: { width: 700, height: 500, channels: 3 } });
    const cases: [string, Buffer][] = [
      ['baseline 4:2:0', await base().jpeg({ quality: 80 }).toBuffer()],
      ['baseline 4:4:4', await base().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer()],
      ['progressive', await base().jpeg({ progressive: true }).toBuffer()],
      ['greyscale', await base().greyscale().jpeg().toBuffer()],
      ...photos.filter((f) => f.endsWith('.jpg')).map((f): [string, Buffer] => [path.basename(f), readFileSync(f)]),
    ];
    for (const [name, bytes] of cases) {
      const meta = await sharp(bytes).metadata();
      for (const [w, h] of [[384, 384], [224, 224], [97, 511]] as const) {
        const streamed = jpegResizedNative(bytes, meta.width!, meta.height!, w, h);
        expect(streamed, `${name} → ${w}×${h}`).not.toBeNull();
        expect(Buffer.compare(streamed!.data, await wholeThenResized(bytes, w, h)), `${name} → ${w}×${h}`).toBe(0);
      }
    }
  });

  it('declines what the general path must decide: truncated or corrupt data, CMYK, a size other than the header said', async () => {
    const rand = seededRandom(10);
    const raw = Buffer.from(Array.from({ length: 300 * 200 * 3 }, () => Math.floor(rand() * 256)));
    const jpeg = await sharp(raw, { raw: { width: 300, height: 200, channels: 3 } }).jpeg().toBuffer();
    expect(jpegResizedNative(jpeg, 300, 200, 64, 64)).not.toBeNull();
    expect(jpegResizedNative(jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), 300, 200, 64, 64)).toBeNull();
    const damaged = Buffer.from(jpeg);
    damaged.fill(0xff, 400, 420);
    expect(jpegResizedNative(damaged, 300, 200, 64, 64)).toBeNull();
    expect(jpegResizedNative(jpeg, 301, 200, 64, 64)).toBeNull();
    const cmyk = await sharp(raw, { raw: { width: 300, height: 200, channels: 3 } }).toColourspace('cmyk').jpeg().toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    expect(jpegResizedNative(cmyk, 300, 200, 64, 64)).toBeNull();
    expect(jpegResizedNative(Buffer.from('not a jpeg at all'), 300, 200, 64, 64)).toBeNull();
  });
});

describe('image intake on worker threads', () => {
  it('gives the pixels and source of the calling thread\'s JavaScript path, bit for bit', async () => {
    const intake = pool();
    const cases: [string, Buffer][] = [...(await generatedImages()), ...photos.map((f): [string, Buffer] => [path.basename(f), readFileSync(f)])];
    // all at once: the two threads take them in parallel
    const results = await Promise.all(cases.map(([, bytes]) => intake.preprocess(bytes)));
    for (const [i, [name, bytes]] of cases.entries()) {
      const reference = await preprocessImage(bytes, spec, DEFAULT_IMAGE_LIMITS, { resampler: 'js' });
      expect(results[i]!.pixels.length, name).toBe(3 * 384 * 384);
      expect(Buffer.compare(Buffer.from(bits(results[i]!.pixels).buffer), Buffer.from(bits(reference.pixels).buffer)), name).toBe(0);
      expect(results[i]!.source, name).toEqual(reference.source satisfies ImageSource);
    }
    // the caller's bytes are still its own (a copy went to the thread)
    expect(cases[0]![1].length).toBeGreaterThan(0);
    expect(intake.stats()).toMatchObject({ size: 2, busy: 0, queued: 0, crashes: 0 });
  });

  it('fails only the image whose thread died, with a retryable error, and replaces the thread', async () => {
    const intake = pool(new URL('./fixtures/crashing-intake-worker.ts', import.meta.url));
    const [good] = await generatedImages();
    const crash = Buffer.concat([Buffer.from('CRASH'), good![1]]);
    const outcomes = await Promise.allSettled([intake.preprocess(good![1]), intake.preprocess(crash), intake.preprocess(good![1]), intake.preprocess(good![1])]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const error = (outcomes[1] as PromiseRejectedResult).reason as AppError;
    expect(error).toBeInstanceOf(AppError);
    expect(error.code).toBe('MODEL_UNAVAILABLE');
    expect(error.details.retryable).toBe(true);
    expect(intake.stats().crashes).toBe(1);
    // the replacement serves the next images, both threads busy at once
    const again = await Promise.all([intake.preprocess(good![1]), intake.preprocess(good![1]), intake.preprocess(good![1])]);
    expect(again.every((r) => r.pixels.length === 3 * 384 * 384)).toBe(true);
    expect(intake.stats()).toMatchObject({ size: 2, crashes: 1, busy: 0, queued: 0 });
  });
});

describe.skipIf(!packDir)('the engine with its intake threads and warm-up', () => {
  it('reports the warm-up runs done before start() resolved, and none when warm-up is off', async () => {
    const warm = await createLocalInferenceEngine({ packDir: packDir!, intraOpThreads: 1, maxBatchSize: 4, decoderChunkTags: 1000 });
    const cold = await createLocalInferenceEngine({ packDir: packDir!, intraOpThreads: 1, warmup: false });
    try {
      const info = await warm.start();
      const S = info.imageSize;
      const perChunk = Math.ceil(info.builtinTagCount / Math.ceil(info.builtinTagCount / Math.min(1000, info.builtinTagCount)));
      expect(info.startup!.warmed).toEqual([
        { graph: 'imageEncoder', shape: [4, 3, S, S] },
        { graph: 'imageEncoder', shape: [1, 3, S, S] },
        { graph: 'tagDecoder', shape: [4, perChunk, info.builtinDescriptionsPerTag] },
        { graph: 'tagDecoder', shape: [1, perChunk, info.builtinDescriptionsPerTag] },
        { graph: 'textEncoder', shape: [64, info.textContext] },
      ]);
      expect(info.startup!.ms).toBeGreaterThanOrEqual(info.startup!.warmupMs);
      // the warm-up runs are not counted as requests' runs
      expect(warm.stats().runs).toEqual({ imageEncoder: 0, tagDecoder: 0, textEncoder: 0, heatmapDecoder: 0 });
      expect((await cold.start()).startup!.warmed).toEqual([]);
    } finally {
      await Promise.all([warm.dispose(), cold.dispose()]);
    }
  });

  it('scores images through the intake threads; a crashed intake thread fails only its request', async () => {
    const engine = await createLocalInferenceEngine({
      packDir: packDir!,
      intraOpThreads: 1,
      warmup: false,
      intakeWorkers: 2,
      intakeWorkerUrl: new URL('./fixtures/crashing-intake-worker.ts', import.meta.url),
    });
    try {
      await engine.start();
      const [good] = await generatedImages();
      const bank = buildLabelBank({ key: 'intake', embedDim: engine.info.embedDim, tags: [{ descriptions: [new Float32Array(engine.info.embedDim).fill(0.05)], threshold: 0.5 }] });
      const [crashed, fine] = await Promise.allSettled([
        engine.scoreImages([Buffer.concat([Buffer.from('CRASH'), good![1]])], [bank]),
        engine.scoreImages([good![1]], [bank]),
      ]);
      expect(crashed.status).toBe('rejected');
      expect(((crashed as PromiseRejectedResult).reason as AppError).code).toBe('MODEL_UNAVAILABLE');
      expect(fine.status).toBe('fulfilled');
      const [scored] = (fine as PromiseFulfilledResult<Awaited<ReturnType<typeof engine.scoreImages>>>).value;
      expect(scored!.source).toMatchObject({ format: 'jpeg', width: 640, height: 480 });
      expect(engine.stats().intake).toMatchObject({ size: 2, crashes: 1 });
      // and the engine goes on
      const [after] = await engine.scoreImages([good![1]], [bank]);
      expect(after!.scores[0]!.tagCount).toBe(1);
    } finally {
      await engine.dispose();
    }
  });
});
