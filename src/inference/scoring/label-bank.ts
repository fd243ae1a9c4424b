import { AppError, ErrorCode, badInput } from '../../core/errors.ts';
import { float16ToFloat32, float32ToFloat16 } from '../pack/float16.ts';
import type { SegmentArena } from './segment-arena.ts';

/** How a segment stores its embeddings: float32, or IEEE half precision (half the memory). */
export type SegmentPrecision = 'float32' | 'float16';

/**
 * What the tag decoder reads in one run: C tags, each with up to D description embeddings of
 * width E; tags with fewer than D descriptions are zero-padded and masked out. The decoder
 * scores every tag on its own (tag queries attend to image tokens only), so a vocabulary can be
 * split into segments whose logits are concatenated with results identical to one bank.
 *
 * `embeds` and `mask` live in SharedArrayBuffers so the worker threads read them without a
 * copy per call (the built-in segment alone is 4,585×51×512 floats = 479 MB).
 */
export interface BankSegment {
  /** Identity of the content (e.g. the pack file's hash). Same key ⇒ same data. */
  readonly key: string;
  readonly tagCount: number;
  readonly maxDescriptions: number;
  readonly embedDim: number;
  readonly precision: SegmentPrecision;
  /** [C, D, E] row-major, L2-normalised rows, zeros where masked; float16 as its bit patterns. */
  readonly embeds: Float32Array | Uint16Array;
  /** [C, D]: 1 for a real description, 0 for padding; real descriptions come first. */
  readonly mask: Uint8Array;
  /**
   * Set when the arrays live in memory that is reused once nobody holds it (a `SegmentArena`
   * block): read them only while holding. Absent: the memory lives as long as the arrays.
   */
  readonly lifetime?: SegmentLifetime;
}

/** Reference counting of a segment's memory. */
export interface SegmentLifetime {
  /** One more holder; false (and nothing held) when the memory was already freed. */
  hold(): boolean;
  /** One holder fewer; the memory is freed when none is left. */
  release(): void;
}

const EVICTED = 'label-bank-evicted';

/**
 * A bank whose reusable memory was freed (its vocabulary was evicted from the bank cache between
 * being fetched and being scored): the caller fetches the vocabulary again and retries.
 */
export const evictedBank = () =>
  new AppError(ErrorCode.OVERLOADED, 'the compiled vocabulary was evicted from memory before it was scored; try again', { details: { reason: EVICTED } });

export const isEvictedBankError = (e: unknown) => e instanceof AppError && e.details.reason === EVICTED;

/**
 * Holds every segment that has a lifetime, or none: returns the function that releases them, or
 * undefined when one of them was already freed.
 */
export function holdSegments(segments: Iterable<BankSegment>): (() => void) | undefined {
  const held: SegmentLifetime[] = [];
  for (const s of new Set(segments)) {
    if (!s.lifetime) continue;
    if (!s.lifetime.hold()) {
      held.forEach((l) => l.release());
      return undefined;
    }
    held.push(s.lifetime);
  }
  return () => held.forEach((l) => l.release());
}

/**
 * A vocabulary as the engine scores it: C tags in the caller's order, tag i being row
 * `rowOf[i]` of segment `segmentOf[i]`. Segments are shared between banks (every vocabulary
 * seeded from the built-in tags points into the pack's one built-in segment), rows no tag
 * points at are decoded but not reported, and a segment no tag points at is not decoded.
 */
export interface LabelBank {
  /** Cache identity of the whole (e.g. vocabulary id + revision). Same key ⇒ same data. */
  readonly key: string;
  readonly tagCount: number;
  readonly embedDim: number;
  readonly segments: readonly BankSegment[];
  /** [C] */
  readonly segmentOf: Uint16Array;
  /** [C] */
  readonly rowOf: Uint32Array;
  /** [C]: a tag passes when sigmoid(logit) > threshold. */
  readonly thresholds: Float32Array;
}

/** One tag's descriptions: a flat [n*E] array or one array of E per description. */
export type TagDescriptions = Float32Array | readonly Float32Array[];

export interface LabelBankTag {
  descriptions: TagDescriptions;
  threshold: number;
}

/** Segments per bank at most (`segmentOf` is 16-bit). */
export const MAX_SEGMENTS = 65_535;

const badBank = (message: string, details?: Record<string, unknown>) => badInput(`label bank: ${message}`, details);

type SharedArrayBufferWithMax = new (length: number, options: { maxByteLength: number }) => SharedArrayBuffer;

/**
 * Shared memory for one array. Made growable (to its own size) on purpose: V8 maps such buffers
 * page by page and unmaps them when they are collected, whereas plain ones come from malloc, and
 * thousands of ~5 MB segments coming and going fragmented its heap (measured: RSS 1.3 GiB after
 * collection, against 0.14 GiB for the same live data in growable buffers).
 */
function sharedArray<T extends Float32Array | Uint16Array | Uint8Array>(Ctor: new (buffer: SharedArrayBuffer) => T, bytesPer: number, length: number): T {
  const bytes = length * bytesPer;
  return new Ctor(new (SharedArrayBuffer as unknown as SharedArrayBufferWithMax)(bytes, { maxByteLength: bytes }));
}

/**
 * Fills a segment tag by tag, straight into shared memory, so a large vocabulary is packed
 * without first holding a second ragged copy. Given an arena, the memory is a block of it (held
 * once by the built segment's first owner, who must release it; `abandon()` if never built).
 */
export class SegmentBuilder {
  private readonly embeds: Float32Array | Uint16Array;
  private readonly mask: Uint8Array;
  private readonly lifetime: SegmentLifetime | undefined;
  private readonly filled: Uint8Array;
  /** float32 staging of one tag given as separate rows */
  private readonly row: Float32Array;

  constructor(
    private readonly key: string,
    private readonly tagCount: number,
    private readonly maxDescriptions: number,
    private readonly embedDim: number,
    private readonly precision: SegmentPrecision = 'float32',
    arena?: SegmentArena,
  ) {
    for (const [name, v] of Object.entries({ tagCount, maxDescriptions, embedDim })) {
      if (!Number.isInteger(v) || v <= 0) throw badBank(`${name} must be a positive integer, got ${v}`);
    }
    const values = tagCount * maxDescriptions * embedDim;
    const bytesPer = precision === 'float16' ? 2 : 4;
    // the mask after the embeddings, at an offset every view type accepts
    const maskAt = Math.ceil((values * bytesPer) / 8) * 8;
    const block = arena?.allocate(maskAt + tagCount * maxDescriptions);
    if (block) {
      this.embeds = precision === 'float16' ? new Uint16Array(block.buffer, block.offset, values) : new Float32Array(block.buffer, block.offset, values);
      this.mask = new Uint8Array(block.buffer, block.offset + maskAt, tagCount * maxDescriptions);
      this.lifetime = block;
    } else {
      this.embeds = precision === 'float16' ? sharedArray(Uint16Array, 2, values) : sharedArray(Float32Array, 4, values);
      this.mask = sharedArray(Uint8Array, 1, tagCount * maxDescriptions);
    }
    this.filled = new Uint8Array(tagCount);
    this.row = new Float32Array(maxDescriptions * embedDim);
  }

  setTag(index: number, descriptions: TagDescriptions): this {
    const { embedDim: E, maxDescriptions: D } = this;
    if (!Number.isInteger(index) || index < 0 || index >= this.tagCount) throw badBank(`tag index ${index} out of range`);
    const rows = Array.isArray(descriptions) ? (descriptions as readonly Float32Array[]) : null;
    const flat = rows ? null : (descriptions as Float32Array);
    const count = rows ? rows.length : flat!.length / E;
    if (!Number.isInteger(count)) throw badBank(`tag ${index}: ${flat!.length} values is not a multiple of ${E}`);
    if (count < 1) throw badBank(`tag ${index} has no descriptions`, { tagIndex: index });
    if (count > D) throw badBank(`tag ${index} has ${count} descriptions, more than maxDescriptions ${D}`);
    rows?.forEach((row, d) => {
      if (row.length !== E) throw badBank(`tag ${index} description ${d} has ${row.length} values, expected ${E}`);
    });
    const values = flat ?? this.gather(rows!);
    const bad = firstNonFinite(values);
    if (bad >= 0) throw badBank(`tag ${index} description ${Math.floor(bad / E)} has a non-finite value`);

    const base = index * D * E;
    if (this.embeds instanceof Uint16Array) float32ToFloat16(values, this.embeds.subarray(base, base + count * E));
    else this.embeds.set(values, base);
    // clear what a previous setTag of the same index may have left
    this.embeds.fill(0, base + count * E, base + D * E);
    this.mask.fill(1, index * D, index * D + count);
    this.mask.fill(0, index * D + count, (index + 1) * D);
    this.filled[index] = 1;
    return this;
  }

  /** Rows given one by one, as one flat view (the staging row of this builder). */
  private gather(rows: readonly Float32Array[]): Float32Array {
    const E = this.embedDim;
    const out = this.row.subarray(0, rows.length * E);
    rows.forEach((row, d) => out.set(row, d * E));
    return out;
  }

  build(): BankSegment {
    const missing = this.filled.indexOf(0);
    if (missing >= 0) throw badBank(`tag ${missing} was never set`);
    return Object.freeze({
      key: this.key,
      tagCount: this.tagCount,
      maxDescriptions: this.maxDescriptions,
      embedDim: this.embedDim,
      precision: this.precision,
      embeds: this.embeds,
      mask: this.mask,
      ...(this.lifetime ? { lifetime: this.lifetime } : {}),
    });
  }

  /** Gives back arena memory of a segment that will not be built (a failed compile). */
  abandon(): void {
    this.lifetime?.release();
  }
}

/** Index of the first NaN or infinity, or -1 (x − x is 0 for every finite x). */
function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

const countOf = (d: TagDescriptions, embedDim: number) => (Array.isArray(d) ? d.length : (d as Float32Array).length / embedDim);

/** Packs ragged per-tag description lists into one segment; D is the largest count unless given. */
export function buildSegment(spec: {
  key: string;
  embedDim: number;
  tags: readonly TagDescriptions[];
  maxDescriptions?: number;
  precision?: SegmentPrecision;
}): BankSegment {
  if (spec.tags.length === 0) throw badBank('a segment needs at least one tag');
  const longest = spec.tags.reduce((m, t) => Math.max(m, Math.ceil(countOf(t, spec.embedDim))), 0);
  const builder = new SegmentBuilder(spec.key, spec.tags.length, spec.maxDescriptions ?? Math.max(1, longest), spec.embedDim, spec.precision);
  spec.tags.forEach((t, i) => builder.setTag(i, t));
  return builder.build();
}

/**
 * A bank over segments: `tags[i]` is row `row` of `segments[segment]`. Checks the map and the
 * thresholds (O(C)); the segments themselves are checked by the engine when first used.
 */
export function composeLabelBank(spec: {
  key: string;
  segments: readonly BankSegment[];
  tags: { readonly segmentOf: Uint16Array; readonly rowOf: Uint32Array; readonly thresholds: Float32Array };
}): LabelBank {
  const { key, segments } = spec;
  const { segmentOf, rowOf, thresholds } = spec.tags;
  const embedDim = checkTagMap(key, segments, spec.tags);
  return Object.freeze({ key, tagCount: thresholds.length, embedDim, segments: Object.freeze([...segments]), segmentOf, rowOf, thresholds });
}

/** Checks that every tag points at a row of a segment and has a threshold in [0, 1]; returns the segments' E. */
function checkTagMap(
  key: string,
  segments: readonly BankSegment[],
  tags: { readonly segmentOf: Uint16Array; readonly rowOf: Uint32Array; readonly thresholds: Float32Array },
): number {
  const { segmentOf, rowOf, thresholds } = tags;
  const C = thresholds.length;
  if (!key) throw badBank('key is empty');
  if (segments.length === 0) throw badBank('a bank needs at least one segment', { key });
  if (segments.length > MAX_SEGMENTS) throw badBank(`${segments.length} segments, more than ${MAX_SEGMENTS}`, { key });
  if (C === 0) throw badBank('a bank needs at least one tag', { key });
  if (segmentOf.length !== C || rowOf.length !== C) throw badBank('segmentOf, rowOf and thresholds differ in length', { key });
  const E = segments[0]!.embedDim;
  if (segments.some((s) => s.embedDim !== E)) throw badBank('segments differ in embedDim', { key });
  for (let c = 0; c < C; c++) {
    const s = segments[segmentOf[c]!];
    if (!s) throw badBank(`tag ${c} points at segment ${segmentOf[c]}, of ${segments.length}`, { key, tagIndex: c });
    if (rowOf[c]! >= s.tagCount) throw badBank(`tag ${c} points at row ${rowOf[c]} of a ${s.tagCount}-tag segment`, { key, tagIndex: c });
    const t = thresholds[c]!;
    if (!(t >= 0 && t <= 1)) throw badBank(`tag ${c}: threshold ${t} is not in [0, 1]`, { key, tagIndex: c });
  }
  return E;
}

/** A bank that is exactly one segment, row i being tag i. */
export function singleSegmentBank(key: string, segment: BankSegment, thresholds: Float32Array): LabelBank {
  const C = segment.tagCount;
  return composeLabelBank({
    key,
    segments: [segment],
    tags: { segmentOf: new Uint16Array(C), rowOf: Uint32Array.from({ length: C }, (_, i) => i), thresholds },
  });
}

/** Packs ragged per-tag description lists into a one-segment bank (D: the largest count unless given). */
export function buildLabelBank(spec: {
  key: string;
  embedDim: number;
  tags: readonly LabelBankTag[];
  maxDescriptions?: number;
  precision?: SegmentPrecision;
}): LabelBank {
  if (spec.tags.length === 0) throw badBank('a bank needs at least one tag');
  const segment = buildSegment({ ...spec, tags: spec.tags.map((t) => t.descriptions) });
  return singleSegmentBank(
    spec.key,
    segment,
    Float32Array.from(spec.tags, (t) => t.threshold),
  );
}

/** Number of real descriptions of row `row` of a segment. */
export function segmentRowCount(segment: BankSegment, row: number): number {
  const D = segment.maxDescriptions;
  const at = segment.mask.subarray(row * D, (row + 1) * D).indexOf(0);
  return at < 0 ? D : at;
}

/** Number of real descriptions of tag `index`. */
export function descriptionCount(bank: LabelBank, index: number): number {
  return segmentRowCount(bank.segments[bank.segmentOf[index]!]!, bank.rowOf[index]!);
}

/** Row `row`'s description embeddings as float32 [n × E] (a view for float32 segments, a copy for float16). */
export function segmentRowEmbeddings(segment: BankSegment, row: number): Float32Array {
  const { maxDescriptions: D, embedDim: E } = segment;
  const view = segment.embeds.subarray(row * D * E, (row * D + segmentRowCount(segment, row)) * E);
  return view instanceof Uint16Array ? float16ToFloat32(view) : view;
}

/** Tag `index`'s description embeddings as float32 [n × E] (a view for float32 segments, a copy for float16). */
export function tagEmbeddings(bank: LabelBank, index: number): Float32Array {
  return segmentRowEmbeddings(bank.segments[bank.segmentOf[index]!]!, bank.rowOf[index]!);
}

/**
 * Checks the structural invariants the decoder relies on (sizes, real descriptions first and
 * at least one per tag). Cheap: O(C·D), never touches the embeddings.
 */
export function assertValidSegment(segment: BankSegment, embedDim: number): void {
  const { tagCount: C, maxDescriptions: D, embedDim: E, key } = segment;
  if (!key) throw badBank('segment key is empty');
  if (E !== embedDim) throw badBank(`embedDim ${E} does not match the model's ${embedDim}`, { key });
  if (!(C > 0 && D > 0)) throw badBank(`empty segment (${C} tags × ${D} descriptions)`, { key });
  const ArrayType = segment.precision === 'float16' ? Uint16Array : segment.precision === 'float32' ? Float32Array : undefined;
  if (!ArrayType || !(segment.embeds instanceof ArrayType)) throw badBank(`embeds do not match precision ${String(segment.precision)}`, { key });
  if (segment.embeds.length !== C * D * E || segment.mask.length !== C * D) {
    throw badBank('array sizes do not match tagCount/maxDescriptions/embedDim', { key });
  }
  for (let c = 0; c < C; c++) {
    const row = segment.mask.subarray(c * D, (c + 1) * D);
    const firstPad = row.indexOf(0);
    if (row[0] !== 1) throw badBank(`tag ${c} has no descriptions`, { key, tagIndex: c });
    if (firstPad >= 0 && row.indexOf(1, firstPad) >= 0) throw badBank(`tag ${c} has padding before a description`, { key, tagIndex: c });
  }
}

/** Checks a bank's own fields against the model (its segments: `assertValidSegment`). */
export function assertValidBank(bank: LabelBank, embedDim: number): void {
  if (!bank.key) throw badBank('key is empty');
  if (bank.embedDim !== embedDim) throw badBank(`embedDim ${bank.embedDim} does not match the model's ${embedDim}`, { key: bank.key });
  if (bank.tagCount !== bank.thresholds.length) throw badBank(`tagCount ${bank.tagCount} but ${bank.thresholds.length} thresholds`, { key: bank.key });
  // banks made elsewhere than composeLabelBank get the same checks
  if (checkTagMap(bank.key, bank.segments, bank) !== embedDim) throw badBank(`segments of width other than the model's ${embedDim}`, { key: bank.key });
}

const sharedCopies = new WeakMap<BankSegment, BankSegment>();

/**
 * The same segment backed by SharedArrayBuffers (copied once and remembered), so segments
 * built elsewhere from plain arrays still reach the workers without a copy per call.
 */
export function asSharedSegment(segment: BankSegment): BankSegment {
  if (segment.embeds.buffer instanceof SharedArrayBuffer && segment.mask.buffer instanceof SharedArrayBuffer) return segment;
  let shared = sharedCopies.get(segment);
  if (!shared) {
    const embeds = segment.embeds instanceof Uint16Array ? sharedArray(Uint16Array, 2, segment.embeds.length) : sharedArray(Float32Array, 4, segment.embeds.length);
    embeds.set(segment.embeds);
    const mask = sharedArray(Uint8Array, 1, segment.mask.length);
    mask.set(segment.mask);
    shared = Object.freeze({ ...segment, embeds, mask });
    sharedCopies.set(segment, shared);
  }
  return shared;
}

/** Bytes a segment's arrays hold. */
export const segmentBytes = (s: BankSegment) => s.embeds.byteLength + s.mask.byteLength;
