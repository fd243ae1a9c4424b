/**
 * Compiles one read revision into a bank: embeds the changed tags' descriptions (through the
 * cache; built-in tags take the pack's rows), builds each tag's piece, and lays the pieces out
 * touching as little new memory as it can (`same`, `builtin`, `append` or `full`).
 */
import type { DescriptionSource } from '../../generated/prisma/client.ts';
import type { BuiltinVocabulary, InferenceEngine, LabelBank } from '../../inference/index.ts';
import type { SnapshotDescriptionRow, SnapshotTagRow } from '../repository/snapshots.ts';
import { thresholdOf } from '../views.ts';
import type { EmbeddingCache } from './embedding-cache.ts';
import type { RevisionRead } from './revision-reader.ts';
import { allocate, append, borrowBuiltin, canAppend, EMPTY_BUFFERS, type BankBuffers } from './shared-buffers.ts';
import type { SnapshotDescription, SnapshotTag, VocabularySnapshot } from './snapshot.ts';

/** One tag's part of a bank. */
export interface Piece {
  /** Identity of the rows: built-in row + description hashes. Same signature ⇒ same embeddings. */
  signature: string;
  /** [n × E]; after a compile, a view into that compile's bank. */
  embeds: Float32Array;
  count: number;
  tag: SnapshotTag;
  /** The pack's built-in row when the tag is exactly that row, else -1. */
  builtinRow: number;
}

/** A compiled revision and what the next, incremental compile reuses. */
export interface Compiled {
  tenantId: string;
  encoderId: string;
  revision: number;
  snapshot: VocabularySnapshot;
  /** Per enabled tag (with descriptions or not: skipped ones have count 0). */
  pieces: Map<string, Piece>;
  /** Enabled tags in bank order (skipped ones included). */
  order: string[];
  /** Ids of the bank's rows. */
  rowIds: string[];
  buffers: BankBuffers;
  /** Memory it holds, for the cache's budget. */
  bytes: number;
}

export interface CompilerDeps {
  engine: InferenceEngine;
  embeddings: EmbeddingCache;
  defaultThreshold: number;
}

export type Packing = 'same' | 'builtin' | 'append' | 'full' | 'empty';

export interface CompileResult {
  compiled: Compiled;
  packing: Packing;
  embedMs: number;
  buildMs: number;
}

export async function compileRevision(deps: CompilerDeps, tenantId: string, vocabularyId: string, read: RevisionRead, prev: Compiled | undefined): Promise<CompileResult> {
  const { engine, embeddings } = deps;
  const encoderId = engine.info.textEncoderId;
  const E = engine.info.embedDim;
  const t0 = performance.now();
  const needBuiltin = read.rows.some((r) => r.builtinIndex !== null);
  const builtin: BuiltinVocabulary | undefined = needBuiltin ? await engine.builtinVocabulary() : undefined;

  // embeddings of the changed tags' stored descriptions, through the cache
  const hashed = read.descriptions.map((d) => ({ hash: d.textHash, text: d.text }));
  const vectors = hashed.length ? (await embeddings.embedHashed(hashed)).vectors : [];
  const t1 = performance.now();

  const byTag = new Map<string, { rows: SnapshotDescriptionRow[]; vectors: Float32Array[] }>();
  read.descriptions.forEach((d, i) => {
    const entry = byTag.get(d.tagId) ?? { rows: [], vectors: [] };
    entry.rows.push(d);
    entry.vectors.push(vectors[i]!);
    byTag.set(d.tagId, entry);
  });
  const namesByTag = new Map<string, Record<string, string>>();
  for (const n of read.names) {
    const entry = namesByTag.get(n.tagId) ?? {};
    entry[n.language] = n.name;
    namesByTag.set(n.tagId, entry);
  }
  const fresh = new Map<string, Piece>();
  for (const row of read.rows) {
    fresh.set(row.id, buildPiece(row, byTag.get(row.id) ?? { rows: [], vectors: [] }, namesByTag.get(row.id) ?? {}, prev, builtin, E, deps.defaultThreshold));
  }

  // the bank, in the order of the revision's tag list
  const ordered: Piece[] = [];
  const rowIds: string[] = [];
  const skipped: { id: string; name: string }[] = [];
  const pieces = new Map<string, Piece>();
  for (const id of read.order) {
    const piece = fresh.get(id) ?? prev!.pieces.get(id)!;
    pieces.set(id, piece);
    if (piece.count > 0) {
      ordered.push(piece);
      rowIds.push(id);
    } else skipped.push({ id, name: piece.tag.name });
  }
  const packed = ordered.length > 0 ? pack(ordered, rowIds, prev, builtin, E) : undefined;
  let bank: LabelBank | null = null;
  let bytes = 0;
  if (packed) {
    const { buffers } = packed;
    const C = ordered.length;
    const D = buffers.D;
    const thresholds = Float32Array.from(ordered, (p) => p.tag.threshold);
    bank = Object.freeze({
      key: `vocab:${vocabularyId}:r${read.revision}:${encoderId.slice(0, 16)}`,
      tagCount: C,
      maxDescriptions: D,
      embedDim: E,
      embeds: new Float32Array(buffers.embeds, 0, C * D * E),
      mask: new Uint8Array(buffers.mask, 0, C * D),
      thresholds,
    });
    bytes += (buffers.borrowed ? 0 : buffers.embeds.byteLength + buffers.mask.byteLength) + thresholds.byteLength;
  }
  bytes += metadataBytes(pieces.values());
  const snapshot: VocabularySnapshot = Object.freeze({
    tenantId,
    vocabularyId,
    revision: read.revision,
    bank,
    tags: Object.freeze(ordered.map((p) => p.tag)),
    skipped: Object.freeze(skipped),
  });
  const compiled: Compiled = { tenantId, encoderId, revision: read.revision, snapshot, pieces, order: read.order, rowIds, buffers: packed?.buffers ?? EMPTY_BUFFERS, bytes };
  return { compiled, packing: packed?.how ?? 'empty', embedMs: t1 - t0, buildMs: performance.now() - t1 };
}

/** One tag's piece: the previous compile's when its rows did not change, else built now. */
function buildPiece(
  row: SnapshotTagRow,
  stored: { rows: SnapshotDescriptionRow[]; vectors: Float32Array[] },
  names: Record<string, string>,
  prev: Compiled | undefined,
  builtin: BuiltinVocabulary | undefined,
  E: number,
  defaultThreshold: number,
): Piece {
  const useBuiltin = row.builtinIndex !== null && row.useBuiltinDescriptions && builtin !== undefined;
  const builtinCount = useBuiltin ? (builtin!.tags[row.builtinIndex!]?.descriptionCount ?? 0) : 0;
  const signature = `${useBuiltin ? `b${row.builtinIndex}:${builtin!.bank.key};` : ''}${stored.rows.map((r) => r.textHash).join(',')}`;
  const count = builtinCount + stored.rows.length;
  const old = prev?.pieces.get(row.id);
  let embeds: Float32Array;
  if (old && old.signature === signature) {
    embeds = old.embeds;
  } else if (stored.rows.length === 0 && useBuiltin) {
    const D = builtin!.bank.maxDescriptions;
    embeds = builtin!.bank.embeds.subarray(row.builtinIndex! * D * E, (row.builtinIndex! * D + builtinCount) * E);
  } else {
    embeds = new Float32Array(count * E);
    if (useBuiltin) {
      const D = builtin!.bank.maxDescriptions;
      embeds.set(builtin!.bank.embeds.subarray(row.builtinIndex! * D * E, (row.builtinIndex! * D + builtinCount) * E));
    }
    stored.vectors.forEach((v, d) => embeds.set(v, (builtinCount + d) * E));
  }
  const source: DescriptionSource = useBuiltin
    ? 'BUILTIN'
    : stored.rows.some((r) => r.source === 'LLM')
      ? 'LLM'
      : stored.rows.some((r) => r.source === 'TEMPLATE')
        ? 'TEMPLATE'
        : stored.rows.length > 0
          ? 'MANUAL'
          : 'TEMPLATE';
  const tag: SnapshotTag = Object.freeze({
    id: row.id,
    name: row.name,
    names: Object.freeze(names),
    threshold: thresholdOf(row, builtin, defaultThreshold),
    builtin: row.builtinIndex !== null,
    status: row.descriptionState,
    statusReason: row.descriptionError,
    descriptionSource: source,
    usedFallback: row.descriptionState !== 'READY',
    descriptions:
      stored.rows.length === 0
        ? builtinDescriptions(builtinCount)
        : Object.freeze([...builtinDescriptions(builtinCount), ...stored.rows.map((r) => Object.freeze({ source: r.source, text: r.text }))]),
  });
  const builtinRow = useBuiltin && stored.rows.length === 0 ? row.builtinIndex! : -1;
  return { signature, embeds, count, tag, builtinRow };
}

/**
 * Lays the pieces out as [C, D, E] + [C, D], touching as little new memory as it can:
 * - `same`: the previous revision's rows unchanged (thresholds or names edited): its buffers;
 * - `builtin`: exactly the pack's built-in vocabulary: the pack's own buffers, shared;
 * - `append`: the previous rows plus new ones at the end: the previous buffers grow in place
 *   (rows older snapshots see are never written again);
 * - `full`: new growable buffers with room to append later.
 * Runs synchronously from its checks to its writes, so concurrent compiles cannot both append.
 */
function pack(ordered: Piece[], rowIds: string[], prev: Compiled | undefined, builtin: BuiltinVocabulary | undefined, E: number): { buffers: BankBuffers; how: Packing } {
  const C = ordered.length;
  const needD = ordered.reduce((m, p) => Math.max(m, p.count), 1);
  const pb = prev?.buffers;
  const samePrefix = (n: number) => {
    for (let i = 0; i < n; i++) {
      if (rowIds[i] !== prev!.rowIds[i] || ordered[i]!.signature !== prev!.pieces.get(rowIds[i]!)?.signature) return false;
    }
    return true;
  };
  if (pb && pb !== EMPTY_BUFFERS && needD === pb.D && C === prev!.rowIds.length && samePrefix(C)) {
    return { buffers: pb, how: 'same' };
  }
  if (builtin && C === builtin.bank.tagCount && needD <= builtin.bank.maxDescriptions && ordered.every((p, i) => p.builtinRow === i)) {
    return { buffers: borrowBuiltin(builtin.bank), how: 'builtin' };
  }
  const prevC = prev?.rowIds.length ?? 0;
  if (pb && canAppend(pb, needD, prevC, C) && samePrefix(prevC)) {
    append(pb, ordered, prevC);
    return { buffers: pb, how: 'append' };
  }
  return { buffers: allocate(ordered, needD, E), how: 'full' };
}

/** A rough count of what the tag entries hold besides the bank. */
function metadataBytes(pieces: Iterable<Piece>): number {
  let bytes = 0;
  for (const p of pieces) {
    bytes += 160 + 2 * p.tag.name.length;
    if (p.tag.descriptionSource !== 'BUILTIN') for (const d of p.tag.descriptions) bytes += 48 + 2 * (d.text?.length ?? 0);
    for (const n of Object.values(p.tag.names)) bytes += 64 + 2 * n.length;
  }
  return bytes;
}

const builtinDescriptionLists = new Map<number, readonly SnapshotDescription[]>();

/** `n` BUILTIN entries, one frozen list per length shared by every tag. */
function builtinDescriptions(n: number): readonly SnapshotDescription[] {
  let list = builtinDescriptionLists.get(n);
  if (!list) {
    list = Object.freeze(Array.from({ length: n }, () => Object.freeze({ source: 'BUILTIN' as const, text: null })));
    builtinDescriptionLists.set(n, list);
  }
  return list;
}
