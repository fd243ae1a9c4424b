import { badInput } from '../../core/errors.ts';

/**
 * The tag decoder's vocabulary input: C tags, each with up to D description embeddings of
 * width E. Tags with fewer than D descriptions are zero-padded and masked out.
 *
 * `embeds` and `mask` live in SharedArrayBuffers so the worker threads read them without a
 * copy per call (the built-in bank alone is 4,585×51×512 floats = 479 MB).
 */
export interface LabelBank {
  /** Cache identity of the content (e.g. vocabulary id + revision). Same key ⇒ same data. */
  readonly key: string;
  readonly tagCount: number;
  readonly maxDescriptions: number;
  readonly embedDim: number;
  /** [C, D, E] row-major, L2-normalised rows, zeros where masked. */
  readonly embeds: Float32Array;
  /** [C, D]: 1 for a real description, 0 for padding. Every tag has at least one 1. */
  readonly mask: Uint8Array;
  /** [C]: a tag passes when sigmoid(logit) > threshold. */
  readonly thresholds: Float32Array;
}

/** One tag's descriptions: a flat [n*E] array or one array of E per description. */
export type TagDescriptions = Float32Array | readonly Float32Array[];

export interface LabelBankTag {
  descriptions: TagDescriptions;
  threshold: number;
}

const badBank = (message: string, details?: Record<string, unknown>) => badInput(`label bank: ${message}`, details);

function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

/**
 * Fills a bank tag by tag, so a large vocabulary is packed straight into shared memory
 * without first holding a second ragged copy.
 */
export class LabelBankBuilder {
  private readonly embeds: Float32Array;
  private readonly mask: Uint8Array;
  private readonly thresholds: Float32Array;
  private readonly filled: Uint8Array;

  constructor(
    private readonly key: string,
    private readonly tagCount: number,
    private readonly maxDescriptions: number,
    private readonly embedDim: number,
  ) {
    for (const [name, v] of Object.entries({ tagCount, maxDescriptions, embedDim })) {
      if (!Number.isInteger(v) || v <= 0) throw badBank(`${name} must be a positive integer, got ${v}`);
    }
    this.embeds = sharedFloat32(tagCount * maxDescriptions * embedDim);
    this.mask = new Uint8Array(new SharedArrayBuffer(tagCount * maxDescriptions));
    this.thresholds = new Float32Array(tagCount);
    this.filled = new Uint8Array(tagCount);
  }

  setTag(index: number, descriptions: TagDescriptions, threshold: number): this {
    const { embedDim: E, maxDescriptions: D } = this;
    if (!Number.isInteger(index) || index < 0 || index >= this.tagCount) throw badBank(`tag index ${index} out of range`);
    if (!(threshold >= 0 && threshold <= 1)) throw badBank(`tag ${index}: threshold ${threshold} is not in [0, 1]`);
    const rows = Array.isArray(descriptions) ? (descriptions as readonly Float32Array[]) : null;
    const flat = rows ? null : (descriptions as Float32Array);
    const count = rows ? rows.length : flat!.length / E;
    if (!Number.isInteger(count)) throw badBank(`tag ${index}: ${flat!.length} values is not a multiple of ${E}`);
    if (count < 1) throw badBank(`tag ${index} has no descriptions`, { tagIndex: index });
    if (count > D) throw badBank(`tag ${index} has ${count} descriptions, more than maxDescriptions ${D}`);

    const base = index * D * E;
    for (let d = 0; d < count; d++) {
      const row = rows ? rows[d]! : flat!.subarray(d * E, (d + 1) * E);
      if (row.length !== E) throw badBank(`tag ${index} description ${d} has ${row.length} values, expected ${E}`);
      for (let k = 0; k < E; k++) {
        if (!Number.isFinite(row[k]!)) throw badBank(`tag ${index} description ${d} has a non-finite value`);
      }
      this.embeds.set(row, base + d * E);
    }
    // clear what a previous setTag of the same index may have left
    this.embeds.fill(0, base + count * E, base + D * E);
    this.mask.fill(1, index * D, index * D + count);
    this.mask.fill(0, index * D + count, (index + 1) * D);
    this.thresholds[index] = threshold;
    this.filled[index] = 1;
    return this;
  }

  build(): LabelBank {
    const missing = this.filled.indexOf(0);
    if (missing >= 0) throw badBank(`tag ${missing} was never set`);
    return Object.freeze({
      key: this.key,
      tagCount: this.tagCount,
      maxDescriptions: this.maxDescriptions,
      embedDim: this.embedDim,
      embeds: this.embeds,
      mask: this.mask,
      thresholds: this.thresholds,
    });
  }
}

const countOf = (d: TagDescriptions, embedDim: number) => (Array.isArray(d) ? d.length : (d as Float32Array).length / embedDim);

/**
 * Packs ragged per-tag description lists into a bank. D is the largest count unless
 * `maxDescriptions` asks for more (e.g. to match another bank).
 */
export function buildLabelBank(spec: {
  key: string;
  embedDim: number;
  tags: readonly LabelBankTag[];
  maxDescriptions?: number;
}): LabelBank {
  if (spec.tags.length === 0) throw badBank('a bank needs at least one tag');
  const longest = spec.tags.reduce((m, t) => Math.max(m, Math.ceil(countOf(t.descriptions, spec.embedDim))), 0);
  const builder = new LabelBankBuilder(spec.key, spec.tags.length, spec.maxDescriptions ?? Math.max(1, longest), spec.embedDim);
  spec.tags.forEach((t, i) => builder.setTag(i, t.descriptions, t.threshold));
  return builder.build();
}

/** Number of real descriptions of tag `index`. */
export function descriptionCount(bank: LabelBank, index: number): number {
  const D = bank.maxDescriptions;
  let n = 0;
  for (let d = 0; d < D; d++) n += bank.mask[index * D + d]!;
  return n;
}

/**
 * Checks the structural invariants the decoder relies on (sizes, at least one description per
 * tag). Cheap: O(C·D), never touches the embeddings.
 */
export function assertValidBank(bank: LabelBank, embedDim: number): void {
  const { tagCount: C, maxDescriptions: D, embedDim: E } = bank;
  if (!bank.key) throw badBank('key is empty');
  if (E !== embedDim) throw badBank(`embedDim ${E} does not match the model's ${embedDim}`, { key: bank.key });
  if (!(C > 0 && D > 0)) throw badBank(`empty bank (${C} tags × ${D} descriptions)`, { key: bank.key });
  if (bank.embeds.length !== C * D * E || bank.mask.length !== C * D || bank.thresholds.length !== C) {
    throw badBank('array sizes do not match tagCount/maxDescriptions/embedDim', { key: bank.key });
  }
  for (let c = 0; c < C; c++) {
    if (bank.mask.subarray(c * D, (c + 1) * D).indexOf(1) < 0) {
      throw badBank(`tag ${c} has no descriptions`, { key: bank.key, tagIndex: c });
    }
  }
}

const sharedCopies = new WeakMap<Float32Array, { embeds: Float32Array; mask: Uint8Array }>();

/**
 * The same bank backed by SharedArrayBuffers (copied once per array and remembered), so
 * banks built elsewhere from plain arrays still reach the workers without a copy per call.
 */
export function asSharedBank(bank: LabelBank): LabelBank {
  if (bank.embeds.buffer instanceof SharedArrayBuffer && bank.mask.buffer instanceof SharedArrayBuffer) return bank;
  let shared = sharedCopies.get(bank.embeds);
  if (!shared) {
    const embeds = sharedFloat32(bank.embeds.length);
    embeds.set(bank.embeds);
    const mask = new Uint8Array(new SharedArrayBuffer(bank.mask.length));
    mask.set(bank.mask);
    shared = { embeds, mask };
    sharedCopies.set(bank.embeds, shared);
  }
  return { ...bank, embeds: shared.embeds, mask: shared.mask };
}
