/**
 * Image bytes → the image encoder's input: RGB, S×S, normalised, CHW float32.
 *
 * Faithful to RAM++'s reference pipeline (PIL `convert('RGB')` → torchvision
 * `Resize((S, S))`, i.e. antialiased bilinear with the aspect ratio not kept → /255 →
 * (x − mean)/std). The default 'exact' mode decodes at full size with sharp and resizes
 * with a Pillow-identical resampler (resample.ts): its 8-bit image equals Pillow's bit for
 * bit on the reference photos. 'fast' mode lets libvips shrink and resize (JPEG
 * shrink-on-load), ~4× cheaper for large photos but about 0.2–1.4/255 off on average.
 *
 * Decisions (docs/preprocessing.md): EXIF orientation is applied (upright like users see
 * them; the reference ignores it, so `applyOrientation: false` exists for fidelity
 * checks); alpha is dropped without compositing; grey is replicated; CMYK is converted to
 * sRGB; 16-bit is scaled to 8-bit; palettes are expanded; only the first frame of an
 * animation is used; embedded ICC profiles are ignored, as Pillow does.
 */
import sharp, { type OutputInfo } from 'sharp';
import { AppError, ErrorCode } from '../../core/errors.ts';
import { sniffImageFormat } from './format.ts';
import { checkByteSize, checkDimensions, DEFAULT_IMAGE_LIMITS, type ImageLimits, validateImageLimits } from './limits.ts';
import { defaultResampleImplementation, jpegResizedNative, resizeBilinearAntialiasAsync, type ResampleImplementation } from './resample.ts';

/** The part of a pack manifest's `image` section preprocessing needs. */
export interface ImageSpec {
  size: number;
  mean: readonly number[];
  std: readonly number[];
}

export type ResizeMode = 'exact' | 'fast';

export interface PreprocessOptions {
  /** 'exact' (default): Pillow-identical resize; 'fast': libvips resize with shrink-on-load. */
  resize?: ResizeMode;
  /** Rotate/flip by the EXIF orientation tag (default true). */
  applyOrientation?: boolean;
  /** The exact resize's integer passes: 'native' (C, when built; the default then) or 'js'. Same bytes. */
  resampler?: ResampleImplementation;
}

/** What the input was, for logs and API responses. */
export interface ImageSource {
  /** 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif' | 'heif'. */
  format: string;
  /** As stored, before orientation. */
  width: number;
  height: number;
  /** EXIF orientation (1–8) when the file has one. */
  orientation?: number;
  /** Number of frames/pages when more than one (only the first is used). */
  frames?: number;
  hasAlpha: boolean;
  bytes: number;
}

export interface PreprocessedImage {
  /** [3, S, S] float32, CHW. */
  pixels: Float32Array;
  source: ImageSource;
}

/** One image: decode, check, resize, normalise. Throws AppError (BAD_IMAGE, IMAGE_TOO_LARGE, UNSUPPORTED_FORMAT). */
export async function preprocessImage(
  bytes: Uint8Array,
  spec: ImageSpec,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
  opts: PreprocessOptions = {},
): Promise<PreprocessedImage> {
  const pixels = new Float32Array(3 * spec.size * spec.size);
  const source = await preprocessInto(bytes, spec, limits, pixels, 0, opts);
  return { pixels, source };
}

/** Like preprocessImage, writing into `out` at batch index `index` ([B,3,S,S] layout). */
export async function preprocessInto(
  bytes: Uint8Array,
  spec: ImageSpec,
  limits: ImageLimits,
  out: Float32Array,
  index: number,
  opts: PreprocessOptions = {},
): Promise<ImageSource> {
  checkSpec(spec);
  validateImageLimits(limits);
  const S = spec.size;
  const plane = S * S;
  if (!Number.isInteger(index) || index < 0 || (index + 1) * 3 * plane > out.length) {
    throw new RangeError(`batch index ${index} does not fit an output of ${out.length} floats for ${S}×${S} images`);
  }
  const rgb = await decodeResized(bytes, S, limits, opts);
  writeNormalizedChw(rgb.data, spec, out, index * 3 * plane);
  return rgb.source;
}

/** (v/255 − mean)/std per channel as float32 arithmetic (like torchvision), written CHW. */
export function writeNormalizedChw(rgb: Uint8Array, spec: ImageSpec, out: Float32Array, offset = 0): void {
  const plane = spec.size * spec.size;
  if (rgb.length < plane * 3) throw new RangeError(`expected ${plane * 3} RGB bytes, got ${rgb.length}`);
  const { r: lr, g: lg, b: lb } = normalizationTables(spec);
  const g0 = offset + plane;
  const b0 = offset + 2 * plane;
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[offset + i] = lr[rgb[p]!]!;
    out[g0 + i] = lg[rgb[p + 1]!]!;
    out[b0 + i] = lb[rgb[p + 2]!]!;
  }
}

// ---------------------------------------------------------------------------------------

interface ChannelTables {
  r: Float32Array;
  g: Float32Array;
  b: Float32Array;
}
const tablesCache = new Map<string, ChannelTables>();

/** Lookup tables v → (v/255 − mean)/std, one per channel, computed with float32 rounding at each step. */
function normalizationTables(spec: ImageSpec): ChannelTables {
  const key = `${spec.mean.join(',')}/${spec.std.join(',')}`;
  let tables = tablesCache.get(key);
  if (!tables) {
    const f = Math.fround;
    const table = (c: number) => {
      const mean = f(spec.mean[c]!);
      const std = f(spec.std[c]!);
      return Float32Array.from({ length: 256 }, (_, v) => f(f(f(v / 255) - mean) / std));
    };
    tables = { r: table(0), g: table(1), b: table(2) };
    if (tablesCache.size > 16) tablesCache.clear();
    tablesCache.set(key, tables);
  }
  return tables;
}

function checkSpec(spec: ImageSpec): void {
  if (!Number.isInteger(spec.size) || spec.size < 1 || spec.size > 4096) throw new RangeError(`image size ${spec.size} is not a valid side`);
  if (spec.mean.length !== 3 || spec.std.length !== 3 || spec.std.some((s) => !(s > 0))) {
    throw new RangeError('image spec needs 3 means and 3 positive stds');
  }
}

const badImage = (message: string, cause?: unknown, details?: Record<string, unknown>) =>
  new AppError(ErrorCode.BAD_IMAGE, message, { cause, details });

const ACCEPTED_LIST = 'JPEG, PNG, WebP, GIF, TIFF or AVIF';

interface ResizedRgb {
  data: Uint8Array; // S×S×3, upright
  source: ImageSource;
}

async function decodeResized(bytes: Uint8Array, S: number, limits: ImageLimits, opts: PreprocessOptions): Promise<ResizedRgb> {
  if (bytes.length === 0) throw badImage('image is empty (0 bytes)');
  checkByteSize(bytes.length, limits);

  const sniffed = sniffImageFormat(bytes);
  if (sniffed.kind === 'unknown') throw badImage(`data is not an image in a known format (send ${ACCEPTED_LIST})`);
  if (sniffed.kind === 'refused') {
    throw new AppError(ErrorCode.UNSUPPORTED_FORMAT, `${sniffed.name}: ${sniffed.reason}; send ${ACCEPTED_LIST}`, {
      details: { format: sniffed.name },
    });
  }
  const formatName = sniffed.detail ?? sniffed.format;
  if (!sharp.format[sniffed.format]?.input.buffer) {
    throw new AppError(ErrorCode.UNSUPPORTED_FORMAT, `${formatName.toUpperCase()} images cannot be decoded by this server`, {
      details: { format: formatName },
    });
  }

  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The header alone: dimensions are checked before any pixel is decoded.
  const meta = await sharp(input, { limitInputPixels: false, pages: 1 })
    .metadata()
    .catch((e: unknown) => {
      throw decodeError(e, formatName);
    });
  if (meta.format !== sniffed.format) {
    throw badImage(`image content is inconsistent: it starts like ${formatName} but decodes as ${meta.format ?? 'nothing'}`);
  }
  const width = meta.width ?? 0;
  const height = meta.pageHeight && (meta.pages ?? 1) > 1 ? meta.pageHeight : (meta.height ?? 0);
  if (!(width > 0 && height > 0)) throw badImage(`${formatName} image has no dimensions`);
  checkDimensions(width, height, limits);

  const source: ImageSource = {
    format: formatName,
    width,
    height,
    hasAlpha: meta.hasAlpha ?? false,
    bytes: bytes.length,
    ...(meta.orientation ? { orientation: meta.orientation } : {}),
    ...((meta.pages ?? 1) > 1 ? { frames: meta.pages } : {}),
  };

  const pipeline = () =>
    sharp(input, {
      limitInputPixels: limits.maxPixels, // second guard, in case the header lied
      failOn: 'error', // truncated or corrupt data is an error, mere warnings are not
      ignoreIcc: true, // as Pillow: pixel values are taken as they are stored
      pages: 1,
      page: 0,
      sequentialRead: true,
    }).timeout({ seconds: limits.decodeTimeoutSeconds ?? 30 });

  let square: Uint8Array;
  try {
    if (opts.resize === 'fast' && !source.hasAlpha) {
      // libvips would resize premultiplied RGBA: images with alpha always take the exact path.
      const { data, info } = await pipeline()
        .resize(S, S, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: true })
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      expectRgb(info, S, S, data, formatName);
      square = data;
    } else {
      // JPEGs with the C passes: decoded and resized row by row by libjpeg-turbo in the addon,
      // the same bytes as the general path below (null: that path decides)
      const streamed = sniffed.format === 'jpeg' && (opts.resampler ?? defaultResampleImplementation) === 'native' ? jpegResizedNative(bytes, width, height, S, S) : null;
      if (streamed) square = streamed.data;
      else square = await decodeAndResize();
    }
  } catch (e) {
    throw decodeError(e, formatName);
  }
  const orientation = opts.applyOrientation === false ? 1 : (source.orientation ?? 1);
  return { data: orientSquare(square, S, orientation), source };

  async function decodeAndResize(): Promise<Uint8Array> {
    const { data, info } = await pipeline().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    expectRgb(info, width, height, data, formatName);
    return (await resizeBilinearAntialiasAsync({ data, width, height }, S, S, opts.resampler)).data;
  }
}

function expectRgb(info: OutputInfo, width: number, height: number, data: Buffer, format: string): void {
  if (info.channels !== 3 || info.width !== width || info.height !== height || data.length !== width * height * 3) {
    throw badImage(
      `${format} image decoded to ${info.width}×${info.height}×${info.channels}, expected ${width}×${height}×3`,
    );
  }
}

/** Translates a sharp/libvips failure into the API's error codes. */
function decodeError(e: unknown, format: string): AppError {
  if (e instanceof AppError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const first = message.split('\n')[0]!.replace(/^Input (buffer|file) (has|contains) /, '');
  if (/exceeds pixel limit/i.test(message)) {
    return new AppError(ErrorCode.IMAGE_TOO_LARGE, `${format} image has more pixels than allowed`, { cause: e });
  }
  if (/unsupported (codec|feature)|no decoder|compression format has not been built in/i.test(message)) {
    return new AppError(ErrorCode.UNSUPPORTED_FORMAT, `${format} variant not supported by this server: ${first}`, {
      cause: e,
      details: { format },
    });
  }
  if (/timeout/i.test(message)) return badImage(`${format} image took too long to decode`, e);
  return badImage(`${format} image is corrupt or truncated: ${first}`, e, { format });
}

/**
 * Turns the stored S×S image upright according to an EXIF orientation (1–8): out(x, y)
 * reads the stored pixel that the display shows at (x, y).
 */
export function orientSquare(rgb: Uint8Array, S: number, orientation: number): Uint8Array {
  if (orientation === 1 || orientation < 1 || orientation > 8) return rgb;
  const out = new Uint8Array(rgb.length);
  const last = S - 1;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      let sx: number;
      let sy: number;
      switch (orientation) {
        case 2: [sx, sy] = [last - x, y]; break; // mirrored
        case 3: [sx, sy] = [last - x, last - y]; break; // rotated 180°
        case 4: [sx, sy] = [x, last - y]; break; // flipped vertically
        case 5: [sx, sy] = [y, x]; break; // transposed
        case 6: [sx, sy] = [y, last - x]; break; // stored rotated 90° anticlockwise: turn clockwise
        case 7: [sx, sy] = [last - y, last - x]; break; // transversed
        default: [sx, sy] = [last - y, x]; break; // 8: turn anticlockwise
      }
      const o = (y * S + x) * 3;
      const p = (sy * S + sx) * 3;
      out[o] = rgb[p]!;
      out[o + 1] = rgb[p + 1]!;
      out[o + 2] = rgb[p + 2]!;
    }
  }
  return out;
}
