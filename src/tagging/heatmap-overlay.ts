/**
 * A heat map drawn over a thumbnail of its image (PNG), for people: the API's `heatmapPng`,
 * the CLI's `--heatmaps DIR` and the console all use this one drawing.
 */
import sharp, { type OutputInfo } from 'sharp';
import { badInput } from '../core/errors.ts';

export const OVERLAY_SIZE = { min: 16, max: 1024, default: 256 } as const;

/** What is drawn: a grid of non-negative weights, row-major from the top left. */
export interface OverlayMap {
  readonly width: number;
  readonly height: number;
  readonly values: ArrayLike<number>;
}

/**
 * Overlays one request may draw. Each composes and encodes a PNG (and the first of an image and
 * size decodes the image): without a bound, sixteen images × many tags × aliases would ask for
 * seconds of CPU in one request.
 */
export const MAX_OVERLAYS_PER_REQUEST = 32;

/** Counts the overlays a request draws; past `max` it refuses with BAD_USER_INPUT. */
export class OverlayBudget {
  private drawn = 0;

  constructor(private readonly max: number = MAX_OVERLAYS_PER_REQUEST) {}

  take(): void {
    if (this.drawn >= this.max) throw badInput(`a request may draw at most ${this.max} heat-map overlays (heatmapPng); ask for fewer tags or images`, { field: 'heatmapPng' });
    this.drawn++;
  }
}

export function checkOverlaySize(size: number): void {
  if (!Number.isInteger(size) || size < OVERLAY_SIZE.min || size > OVERLAY_SIZE.max) {
    throw badInput(`size must be a whole number of pixels from ${OVERLAY_SIZE.min} to ${OVERLAY_SIZE.max}`, { field: 'size' });
  }
}

// a dark-to-bright ramp (black, purple, red, orange, pale yellow): readable over most photos
const RAMP: readonly (readonly [number, number, number])[] = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

function colour(v: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, v)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [RAMP[i]!, RAMP[i + 1]!];
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as [number, number, number];
}

/**
 * PNG of the image (EXIF orientation applied, as the model saw it) with the map over it: the
 * grid is stretched over the whole image (the model saw it squeezed to a square), smoothed,
 * coloured from the map's minimum (dark, nearly transparent) to its maximum (bright, more
 * opaque). The longer side is `size`.
 */
export async function renderHeatmapOverlay(image: Uint8Array, map: OverlayMap, size: number): Promise<Buffer> {
  checkOverlaySize(size);
  const thumb = await thumbnail(image, size);
  const { width, height } = thumb.info;
  let [min, max] = [Infinity, -Infinity];
  for (let i = 0; i < map.values.length; i++) [min, max] = [Math.min(min, map.values[i]!), Math.max(max, map.values[i]!)];
  const cells = Buffer.alloc(map.width * map.height * 4);
  for (let i = 0; i < map.width * map.height; i++) {
    // the map's own range: where it is highest relative to the rest, even when it is nearly flat
    const v = max > min ? (map.values[i]! - min) / (max - min) : 0;
    const [r, g, b] = colour(v);
    cells.set([r, g, b, Math.round(20 + 160 * v)], i * 4);
  }
  const layer = await sharp(cells, { raw: { width: map.width, height: map.height, channels: 4 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .png()
    .toBuffer();
  return sharp(thumb.data, { raw: { width, height, channels: 3 } })
    .composite([{ input: layer }])
    .png()
    .toBuffer();
}

// One decode per image and size: the overlays of an image's tags share its thumbnail (kept as
// long as the caller holds the image's bytes).
const thumbnails = new WeakMap<Uint8Array, Map<number, Promise<{ data: Buffer; info: OutputInfo }>>>();

function thumbnail(image: Uint8Array, size: number): Promise<{ data: Buffer; info: OutputInfo }> {
  let bySize = thumbnails.get(image);
  if (!bySize) thumbnails.set(image, (bySize = new Map()));
  let thumb = bySize.get(size);
  if (!thumb) {
    thumb = sharp(image, { pages: 1, failOn: 'error' }).rotate().resize(size, size, { fit: 'inside' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    // a failed decode is not kept: the next overlay tries again (and fails the same way)
    thumb.catch(() => bySize.delete(size));
    bySize.set(size, thumb);
  }
  return thumb;
}

export const pngDataUrl = (png: Buffer): string => `data:image/png;base64,${png.toString('base64')}`;
