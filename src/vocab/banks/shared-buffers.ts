/**
 * The shared memory behind a lineage of label banks of one vocabulary: `[C, D, E]` embeddings
 * and a `[C, D]` mask in growable SharedArrayBuffers (the engine's workers read them without a
 * copy). Rows a published bank shows are never written again; new rows go after them.
 */
import type { LabelBank } from '../../inference/index.ts';

export interface BankBuffers {
  embeds: SharedArrayBuffer;
  mask: SharedArrayBuffer;
  D: number;
  E: number;
  capacityRows: number;
  /** Rows some snapshot uses: appends start here, and only when the appender owns the tail. */
  usedRows: number;
  /** The pack's own built-in buffers (not ours to count or to write). */
  borrowed: boolean;
}

/** One tag's rows: `count` embeddings of E floats. */
export interface BankRow {
  embeds: Float32Array;
  count: number;
}

export const EMPTY_BUFFERS: BankBuffers = { embeds: new SharedArrayBuffer(0), mask: new SharedArrayBuffer(0), D: 0, E: 0, capacityRows: 0, usedRows: 0, borrowed: true };

/** Extra rows a new lineage reserves for later appends: 25%, at least 64. */
const capacityFor = (rows: number) => Math.max(rows + 64, Math.ceil(rows * 1.25));

/** The pack's own buffers, shared by every vocabulary that is exactly the built-in one. */
export function borrowBuiltin(bank: LabelBank): BankBuffers {
  const C = bank.tagCount;
  return { embeds: bank.embeds.buffer as SharedArrayBuffer, mask: bank.mask.buffer as SharedArrayBuffer, D: bank.maxDescriptions, E: bank.embedDim, capacityRows: C, usedRows: C, borrowed: true };
}

/** New growable buffers holding `rows`, with room to append later. */
export function allocate(rows: BankRow[], D: number, E: number): BankBuffers {
  const C = rows.length;
  const capacityRows = capacityFor(C);
  const buffers: BankBuffers = {
    embeds: growable(C * D * E * 4, capacityRows * D * E * 4),
    mask: growable(C * D, capacityRows * D),
    D,
    E,
    capacityRows,
    usedRows: C,
    borrowed: false,
  };
  writeRows(buffers, rows, 0, C);
  return buffers;
}

/** Whether `rows` rows fit after the first `from` without touching a row another bank shows. */
export function canAppend(b: BankBuffers, D: number, from: number, rows: number): boolean {
  return b !== EMPTY_BUFFERS && !b.borrowed && D <= b.D && rows > from && b.usedRows === from && rows <= b.capacityRows;
}

/** Grows the buffers in place and writes rows `from`…`rows.length` (checked with `canAppend`). */
export function append(b: BankBuffers, rows: BankRow[], from: number): void {
  const C = rows.length;
  grow(b.embeds, C * b.D * b.E * 4);
  grow(b.mask, C * b.D);
  writeRows(b, rows, from, C);
  b.usedRows = C;
}

function writeRows(b: BankBuffers, rows: BankRow[], from: number, to: number): void {
  const { D, E } = b;
  const embeds = new Float32Array(b.embeds, 0, to * D * E);
  const mask = new Uint8Array(b.mask, 0, to * D);
  for (let c = from; c < to; c++) {
    const p = rows[c]!;
    embeds.set(p.embeds, c * D * E);
    mask.fill(1, c * D, c * D + p.count);
    // keep the row as a view of the bank: no second copy of its embeddings
    p.embeds = embeds.subarray(c * D * E, (c * D + p.count) * E);
  }
}

type GrowableSharedArrayBuffer = SharedArrayBuffer & { grow(byteLength: number): void; readonly maxByteLength: number };

/** A SharedArrayBuffer that can grow in place up to `maxBytes` (pages are committed when touched). */
function growable(bytes: number, maxBytes: number): SharedArrayBuffer {
  const Ctor = SharedArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => GrowableSharedArrayBuffer;
  return new Ctor(bytes, { maxByteLength: Math.max(bytes, maxBytes) });
}

function grow(buffer: SharedArrayBuffer, bytes: number): void {
  if (buffer.byteLength < bytes) (buffer as GrowableSharedArrayBuffer).grow(bytes);
}
