/**
 * Limits on uploaded images, checked before any pixel is decoded (from the byte count
 * and the image header), so that oversized files and decompression bombs cost nothing.
 */
import { AppError, ErrorCode } from '../../core/errors.ts';

export interface ImageLimits {
  /** Largest accepted file, in bytes. */
  maxBytes: number;
  /** Largest accepted width × height (of the first frame), in pixels. */
  maxPixels: number;
  /**
   * Largest accepted width or height (of the first frame), in pixels. Required: a limit built
   * from configuration must say it (DEFAULT_IMAGE_LIMITS.maxDimension when it has no setting).
   */
  maxDimension: number;
  /** Give up decoding after this many seconds (a hang guard); 30 when absent. */
  decodeTimeoutSeconds?: number;
}

/**
 * 20 MiB, 50 megapixels, 20,000 px per side: every camera photo passes (a 48 MP phone
 * image included) while a decoded frame stays below 150 MB of RGB.
 */
export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({
  maxBytes: 20 * 1024 * 1024,
  maxPixels: 50_000_000,
  maxDimension: 20_000,
  decodeTimeoutSeconds: 30,
});

const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
const mp = (pixels: number) => `${(pixels / 1e6).toFixed(1)} megapixels`;

export function validateImageLimits(limits: ImageLimits): void {
  const positive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;
  if (!positive(limits.maxBytes)) throw new RangeError(`ImageLimits.maxBytes must be a positive number, got ${limits.maxBytes}`);
  if (!positive(limits.maxPixels)) throw new RangeError(`ImageLimits.maxPixels must be a positive number, got ${limits.maxPixels}`);
  if (!positive(limits.maxDimension)) {
    throw new RangeError(`ImageLimits.maxDimension must be a positive number, got ${limits.maxDimension}`);
  }
  if (limits.decodeTimeoutSeconds !== undefined && !positive(limits.decodeTimeoutSeconds)) {
    throw new RangeError(`ImageLimits.decodeTimeoutSeconds must be a positive number, got ${limits.decodeTimeoutSeconds}`);
  }
}

/** IMAGE_TOO_LARGE when the file itself is over the byte limit. */
export function checkByteSize(byteLength: number, limits: ImageLimits): void {
  if (byteLength > limits.maxBytes) {
    throw new AppError(ErrorCode.IMAGE_TOO_LARGE, `image is ${mb(byteLength)}; the limit is ${mb(limits.maxBytes)}`, {
      details: { bytes: byteLength, maxBytes: limits.maxBytes },
    });
  }
}

/** IMAGE_TOO_LARGE when the header's dimensions are over the pixel or side limits (either side). */
export function checkDimensions(width: number, height: number, limits: ImageLimits): void {
  const details = { width, height, maxPixels: limits.maxPixels, maxDimension: limits.maxDimension };
  if (width * height > limits.maxPixels) {
    throw new AppError(
      ErrorCode.IMAGE_TOO_LARGE,
      `image is ${width}×${height} (${mp(width * height)}); the limit is ${mp(limits.maxPixels)}`,
      { details },
    );
  }
  if (width > limits.maxDimension || height > limits.maxDimension) {
    throw new AppError(
      ErrorCode.IMAGE_TOO_LARGE,
      `image is ${width}×${height}; no side may exceed ${limits.maxDimension} pixels`,
      { details },
    );
  }
}
