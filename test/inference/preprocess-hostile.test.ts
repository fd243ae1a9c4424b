import { deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAppError } from '../../src/core/errors.ts';
import { sniffImageFormat } from '../../src/inference/image/format.ts';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from '../../src/inference/image/limits.ts';
import { preprocessImage, type PreprocessedImage } from '../../src/inference/image/preprocess.ts';
import { IntakePool } from '../../src/inference/runtime/intake-pool.ts';
import { silentLogger } from '../../src/inference/runtime/sessions.ts';
import { seededRandom } from './helpers.ts';

const spec = { size: 32, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

// Every case runs twice: preprocessing on the calling thread, and on the engine's intake
// threads (runtime/intake-pool.ts), which must answer the same codes, messages and details.
const pools = new Map<string, IntakePool>();
function intakePool(limits: ImageLimits): IntakePool {
  const key = JSON.stringify(limits);
  let pool = pools.get(key);
  if (!pool) pools.set(key, (pool = new IntakePool({ size: 2, init: { spec, limits, options: {} }, logger: silentLogger })));
  return pool;
}
afterAll(() => Promise.all([...pools.values()].map((p) => p.dispose())));
let preprocess: (bytes: Uint8Array, limits: ImageLimits) => Promise<PreprocessedImage>;

/** Runs the preprocessor and returns the AppError code it failed with (or 'OK'). */
async function outcome(bytes: Uint8Array, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<string> {
  try {
    const { pixels } = await preprocess(bytes, limits);
    expect(pixels.every(Number.isFinite)).toBe(true);
    return 'OK';
  } catch (e) {
    if (!isAppError(e)) throw e;
    expect(e.message.length).toBeGreaterThan(10); // a message a user can act on
    return e.code;
  }
}

async function errorOf(bytes: Uint8Array, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) {
  return preprocess(bytes, limits).then(
    () => null,
    (e: unknown) => e as { code: string; message: string; details: Record<string, unknown> },
  );
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

/** A well-formed PNG whose header claims `width` × `height` but carries one row of data. */
function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1 + 3 * Math.min(width, 1024)))),
    pngChunk('IEND', new Uint8Array()),
  ]);
}

let noisyJpeg: Buffer;
let noisyPng: Buffer;
beforeAll(async () => {
  const rand = seededRandom(7);
  const raw = Buffer.from(Array.from({ length: 96 * 96 * 3 }, () => Math.floor(rand() * 256)));
  noisyJpeg = await sharp(raw, { raw: { width: 96, height: 96, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  noisyPng = await sharp(raw, { raw: { width: 96, height: 96, channels: 3 } }).png().toBuffer();
});

describe.each(['calling thread', 'intake threads'] as const)('hostile and broken inputs, preprocessed on the %s', (where) => {
  beforeAll(() => {
    preprocess = where === 'calling thread' ? (bytes, limits) => preprocessImage(bytes, spec, limits) : (bytes, limits) => intakePool(limits).preprocess(bytes);
  });

  it('accepts the well-formed originals the broken cases are made from', async () => {
    expect(await outcome(noisyJpeg)).toBe('OK');
    expect(await outcome(noisyPng)).toBe('OK');
  });

  it('refuses an empty buffer', async () => {
    const e = await errorOf(new Uint8Array(0));
    expect(e).toMatchObject({ code: 'BAD_IMAGE' });
    expect(e!.message).toMatch(/empty/);
  });

  it('refuses random bytes and text', async () => {
    const rand = seededRandom(11);
    expect(await outcome(Uint8Array.from({ length: 4096 }, () => Math.floor(rand() * 256)))).toBe('BAD_IMAGE');
    expect(await outcome(Buffer.from('just some text, certainly no picture'))).toBe('BAD_IMAGE');
  });

  it('refuses truncated JPEG and PNG files', async () => {
    for (const cut of [0.25, 0.5, 0.9]) {
      expect(await outcome(noisyJpeg.subarray(0, Math.floor(noisyJpeg.length * cut))), `jpeg ${cut}`).toBe('BAD_IMAGE');
      expect(await outcome(noisyPng.subarray(0, Math.floor(noisyPng.length * cut))), `png ${cut}`).toBe('BAD_IMAGE');
    }
    expect(await outcome(noisyJpeg.subarray(0, 40))).toBe('BAD_IMAGE'); // header only
  });

  it('never crashes on corrupted bytes: either decodes or answers BAD_IMAGE', async () => {
    const rand = seededRandom(3);
    for (let trial = 0; trial < 12; trial++) {
      for (const original of [noisyJpeg, noisyPng]) {
        const damaged = Buffer.from(original);
        for (let k = 0; k < 8; k++) damaged[20 + Math.floor(rand() * (damaged.length - 20))] = Math.floor(rand() * 256);
        expect(['OK', 'BAD_IMAGE']).toContain(await outcome(damaged));
      }
    }
  });

  it('refuses a decompression bomb from its header, before decoding', async () => {
    const e = await errorOf(pngClaiming(100_000, 100_000));
    expect(e).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    expect(e!.message).toMatch(/100000×100000/);
    expect(e!.details).toMatchObject({ width: 100_000, height: 100_000, maxPixels: DEFAULT_IMAGE_LIMITS.maxPixels });
  });

  it('enforces the byte, pixel and side limits it is given', async () => {
    expect(await outcome(noisyPng, { ...DEFAULT_IMAGE_LIMITS, maxBytes: 1000 })).toBe('IMAGE_TOO_LARGE');
    expect(await outcome(noisyPng, { ...DEFAULT_IMAGE_LIMITS, maxPixels: 96 * 96 - 1 })).toBe('IMAGE_TOO_LARGE');
    expect(await outcome(noisyPng, { ...DEFAULT_IMAGE_LIMITS, maxDimension: 95 })).toBe('IMAGE_TOO_LARGE');
    expect(await outcome(noisyPng, { maxBytes: noisyPng.length, maxPixels: 96 * 96, maxDimension: 96 })).toBe('OK');
    const wide = await sharp({ create: { width: 25_000, height: 2, channels: 3, background: '#000' } }).png().toBuffer();
    expect(await outcome(wide)).toBe('IMAGE_TOO_LARGE'); // 25,000 px side > 20,000 default
    await expect(preprocessImage(noisyPng, spec, { maxBytes: -1, maxPixels: 1, maxDimension: 1 })).rejects.toThrow(RangeError);
    await expect(preprocessImage(noisyPng, spec, { maxBytes: 1, maxPixels: 1, maxDimension: undefined as unknown as number })).rejects.toThrow(RangeError);
  });

  it('refuses a side over 20,000 px from the header, before decoding, wide or tall', async () => {
    // Headers claiming these sizes over one row of data: a decoder would fail on them, so
    // IMAGE_TOO_LARGE (not BAD_IMAGE) shows the header alone decided.
    for (const [width, height] of [[20_001, 1], [1, 20_001], [40_000, 1_000], [1, 30_000], [20_001, 20_001]] as const) {
      const e = await errorOf(pngClaiming(width, height));
      expect(e, `${width}×${height}`).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
      expect(e!.details, `${width}×${height}`).toMatchObject({ width, height, maxDimension: 20_000 });
    }
    expect(await outcome(pngClaiming(20_000, 1))).toBe('BAD_IMAGE'); // at the limit: decoded (and truncated)
  });

  it('enforces the side limit for every format it decodes (WebP and AVIF files cannot exceed 16,384 px)', async () => {
    const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: '#4a7' } });
    const encoders: Record<string, (s: Sharp) => Sharp> = {
      png: (s) => s.png(),
      jpeg: (s) => s.jpeg(),
      gif: (s) => s.gif(),
      tiff: (s) => s.tiff(),
    };
    for (const [format, encode] of Object.entries(encoders)) {
      for (const [width, height] of [[20_001, 2], [2, 20_001]] as const) {
        const bytes = await encode(solid(width, height)).toBuffer();
        const e = await errorOf(bytes);
        expect(e, `${format} ${width}×${height}`).toMatchObject({ code: 'IMAGE_TOO_LARGE', details: { width, height } });
      }
      expect(await outcome(await encode(solid(20_000, 2)).toBuffer()), `${format} 20000×2`).toBe('OK');
    }
  });

  it('judges animated and multi-page images by the frame it decodes, the first', async () => {
    // frames of different colours (an encoder may merge identical ones)
    const frames = async (width: number, height: number, count: number) => {
      const each = await Promise.all(
        Array.from({ length: count }, (_, i) => sharp({ create: { width, height, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 40 * i } } }).png().toBuffer()),
      );
      return sharp(each, { join: { animated: true } });
    };
    for (const [what, bytes] of [
      ['GIF, 2 frames of 1×20,001', await (await frames(1, 20_001, 2)).gif().toBuffer()],
      ['GIF, 2 frames of 20,001×1', await (await frames(20_001, 1, 2)).gif().toBuffer()],
      ['TIFF, 2 pages of 20,001×1', await (await frames(20_001, 1, 2)).tiff().toBuffer()],
      ['TIFF, 2 pages of 1×20,001', await (await frames(1, 20_001, 2)).tiff().toBuffer()],
    ] as const) {
      expect((await sharp(bytes, { pages: -1 }).metadata()).pages, what).toBe(2);
      expect(await outcome(bytes), what).toBe('IMAGE_TOO_LARGE');
    }
    // frames within the limit pass, however tall all of them are together
    expect(await outcome(await (await frames(64, 8_000, 3)).gif().toBuffer())).toBe('OK');
    expect(await outcome(await (await frames(64, 8_000, 3)).webp().toBuffer())).toBe('OK');
    expect(await outcome(await (await frames(8_000, 64, 3)).tiff().toBuffer())).toBe('OK');
  });

  it('refuses SVG without rendering it (no external fetch), whatever it is called', async () => {
    const svgs = [
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><image href="http://127.0.0.1:9/x.png" width="64" height="64"/></svg>',
      '\ufeff  <?xml version="1.0"?>\n<!DOCTYPE svg><svg xmlns="http://www.w3.org/2000/svg"><rect width="5" height="5"/></svg>',
    ];
    for (const svg of svgs) {
      const e = await errorOf(Buffer.from(svg));
      expect(e).toMatchObject({ code: 'UNSUPPORTED_FORMAT' });
      expect(e!.message).toMatch(/SVG/);
    }
    expect(await outcome(Buffer.from('<!doctype html><html><body>hi</body></html>'))).toBe('UNSUPPORTED_FORMAT');
  });

  it('refuses other known non-accepted formats by content', async () => {
    const bmp = Buffer.alloc(70);
    bmp.write('BM', 0, 'latin1');
    expect(await outcome(bmp)).toBe('UNSUPPORTED_FORMAT');
    expect(await outcome(Buffer.from('%PDF-1.7\n%...'))).toBe('UNSUPPORTED_FORMAT');
    const mp4 = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom\0\0\0\0isommp41')]);
    expect(await outcome(mp4)).toBe('UNSUPPORTED_FORMAT');
  });

  it('decides by content, not by what the bytes claim to be', async () => {
    // A PNG that carries a JPEG's first bytes is neither: the decoder's view must agree with the sniffer's.
    const chimera = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), noisyPng]);
    expect(await outcome(chimera)).toBe('BAD_IMAGE');
    expect(sniffImageFormat(noisyPng)).toEqual({ kind: 'accepted', format: 'png' });
    expect(sniffImageFormat(noisyJpeg)).toEqual({ kind: 'accepted', format: 'jpeg' });
  });
});
