/**
 * Compiles one read revision into a bank of segments: the pack's built-in segment, shared and
 * never copied, for built-in tags scored with exactly the pack's rows; and the vocabulary's own
 * segments (`segments.ts`) for every other tag. Embeds the changed tags' descriptions through
 * the cache, rebuilds only the own segments whose tags changed, and maps the revision's tags,
 * in bank order, onto segment rows with their thresholds.
 */
import type { DescriptionSource } from '../../generated/prisma/client.ts';
import { composeLabelBank, segmentRowEmbeddings, type BankSegment, type BuiltinVocabulary, type InferenceEngine, type LabelBank, type SegmentArena, type SegmentPrecision } from '../../inference/index.ts';
import type { SnapshotDescriptionRow, SnapshotTagRow } from '../repository/snapshots.ts';
import { thresholdOf } from '../views.ts';
import type { EmbeddingCache } from './embedding-cache.ts';
import type { PreviousCompile, RevisionRead } from './revision-reader.ts';
import { layoutSegments, ownSegmentBytes, type Layout, type OwnSegment, type RowSource } from './segments.ts';
import type { SnapshotTag, VocabularySnapshot } from './snapshot.ts';
import { builtinDescriptions, CompactTagList, IdList, PackedTag } from './tag-list.ts';

/** One tag's part of a bank. */
export interface Piece {
  /** Identity of own rows: built-in row + description hashes (same signature ⇒ same embeddings); '' for a built-in row. */
  signature: string;
  count: number;
  tag: SnapshotTag;
  /** The pack's built-in row when the tag is exactly that row (scored in the shared segment), else -1. */
  builtinRow: number;
}

/**
 * A compiled revision and what the next, incremental compile reuses. Built-in tags kept exactly as
 * the pack has them (most tags of a seeded vocabulary) hold no piece: their id, pack row and
 * threshold are enough to make it again (`previousPieces`).
 */
export interface Compiled {
  tenantId: string;
  encoderId: string;
  revision: number;
  snapshot: VocabularySnapshot;
  /** Enabled tags in bank order (skipped ones included). */
  order: IdList;
  /** By position in `order`: the pack's row of a built-in tag kept as packed, else -1 … */
  packedRow: Int32Array;
  /** … and its threshold. */
  packedThreshold: Float32Array;
  /** Pieces of the other enabled tags (skipped ones have count 0), by id. */
  pieces: Map<string, Piece>;
  /** The vocabulary's own segments (the built-in one is the pack's). */
  segments: OwnSegment[];
  /** Each own tag's segment and row. */
  places: Map<string, { segment: number; row: number }>;
  /** Memory it holds and nobody else does, for the cache's budget. */
  bytes: number;
}

export interface CompilerDeps {
  engine: InferenceEngine;
  embeddings: EmbeddingCache;
  defaultThreshold: number;
  /** Tags per own segment at most. */
  segmentTags: number;
  /** Storage of own segments. */
  precision: SegmentPrecision;
  /** Where own segments are built when the compile fits the cache's budget. */
  arena: SegmentArena;
  /** The cache's budget: a compile larger than this is not kept, so its segments get memory of their own. */
  maxBytes: number;
}

export interface CompileResult {
  compiled: Compiled;
  /** Own segments built by this compile (the others were reused); arena ones are held once each, for the caller to release. */
  built: readonly BankSegment[];
  /** Own segments built by this compile (the others were reused). */
  segmentsBuilt: number;
  embedMs: number;
  buildMs: number;
}

export async function compileRevision(
  deps: CompilerDeps,
  tenantId: string,
  vocabularyId: string,
  read: RevisionRead,
  before: { compiled: Compiled; tags: PreviousTags } | undefined,
): Promise<CompileResult> {
  const prev = before?.compiled;
  const { engine, embeddings } = deps;
  const encoderId = engine.info.textEncoderId;
  const E = engine.info.embedDim;
  const t0 = performance.now();
  const needsPack = read.rows.some((r) => r.builtinIndex !== null) || (prev?.packedRow.some((r) => r >= 0) ?? false);
  const builtin: BuiltinVocabulary | undefined = needsPack ? await engine.builtinVocabulary() : undefined;

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
  const fresh = new Map<string, { piece: Piece; rows: Float32Array[] | undefined }>();
  for (const row of read.rows) {
    fresh.set(row.id, buildPiece(row, byTag.get(row.id) ?? { rows: [], vectors: [] }, namesByTag.get(row.id) ?? {}, prev, builtin, E, deps.defaultThreshold));
  }

  // the revision's tags in bank order: the ones with rows, and the skipped ones
  const previous = before && previousPieces(before.compiled, before.tags, builtin);
  const ordered: { id: string; piece: Piece; position: number }[] = [];
  const skipped: { id: string; name: string }[] = [];
  const pieces = new Map<string, Piece>();
  const packedRow = new Int32Array(read.order.length).fill(-1);
  const packedThreshold = new Float32Array(read.order.length);
  read.order.forEach((id, position) => {
    const piece = fresh.get(id)?.piece ?? previous!(id)!;
    if (piece.tag instanceof PackedTag) {
      packedRow[position] = piece.builtinRow;
      packedThreshold[position] = piece.tag.threshold;
    } else {
      pieces.set(id, piece);
    }
    if (piece.count > 0) ordered.push({ id, piece, position });
    else skipped.push({ id, name: piece.tag.name });
  });

  // own rows: new or changed ones from the embeddings above, the others where the previous compile put them
  const own = ordered.filter((o) => o.piece.builtinRow < 0);
  const ownIds = own.map((o) => o.id);
  const sources = new Map<string, RowSource>();
  const changed = new Set<string>();
  for (const { id, piece } of own) {
    const rows = fresh.get(id)?.rows;
    const count = piece.count;
    if (rows) {
      sources.set(id, { fresh: rows, count });
      changed.add(id);
    } else {
      const at = prev!.places.get(id)!;
      sources.set(id, { segment: prev!.segments[at.segment]!.segment, row: at.row, count });
    }
  }
  const usesBuiltin = ordered.some((o) => o.piece.builtinRow >= 0);

  // from here on nothing awaits: segments built in the arena are handed to the caller or released
  const order = new IdList(read.order);
  const metaBytes = order.bytes + ordered.length * 14 + packedRow.length * 8 + (read.order.length - pieces.size) * PACKED_TAG_BYTES + metadataBytes(pieces.values());
  const layout = layoutSegments(
    prev?.segments ?? [],
    ownIds,
    sources,
    changed,
    { segmentTags: deps.segmentTags, precision: deps.precision, embedDim: E, keyPrefix: `vocab:${vocabularyId}` },
    (ownBytes) => (ownBytes + metaBytes <= deps.maxBytes ? deps.arena : undefined),
  );
  const reused = new Set(prev?.segments.map((s) => s.segment));
  const built = layout.segments.map((s) => s.segment).filter((s) => !reused.has(s));

  let bank: LabelBank | null = null;
  try {
    bank = ordered.length > 0 ? mapTags(ordered, usesBuiltin ? builtin!.segment : undefined, layout, `vocab:${vocabularyId}:r${read.revision}:${encoderId.slice(0, 16)}`) : null;
  } catch (e) {
    built.forEach((s) => s.lifetime?.release());
    throw e;
  }
  const bytes = ownSegmentBytes(layout.segments) + metaBytes;
  const entries = new Map<number, SnapshotTag>();
  ordered.forEach((o, i) => {
    if (!(o.piece.tag instanceof PackedTag)) entries.set(i, o.piece.tag);
  });
  const snapshot: VocabularySnapshot = Object.freeze({
    tenantId,
    vocabularyId,
    revision: read.revision,
    bank,
    tags: new CompactTagList(
      order,
      Int32Array.from(ordered, (o) => o.position),
      entries,
      bank,
      builtin,
    ),
    skipped: Object.freeze(skipped),
  });
  const compiled: Compiled = { tenantId, encoderId, revision: read.revision, snapshot, order, packedRow, packedThreshold, pieces, segments: layout.segments, places: layout.places, bytes };
  return { compiled, built, segmentsBuilt: layout.built, embedMs: t1 - t0, buildMs: performance.now() - t1 };
}

/** The revision's tags (bank order) onto rows: built-in ones into the pack's segment, own ones where the layout put them. */
function mapTags(ordered: readonly { id: string; piece: Piece }[], builtinSegment: BankSegment | undefined, layout: Layout, key: string): LabelBank {
  const segments: BankSegment[] = [...(builtinSegment ? [builtinSegment] : []), ...layout.segments.map((s) => s.segment)];
  const first = builtinSegment ? 1 : 0;
  const C = ordered.length;
  const segmentOf = new Uint16Array(C);
  const rowOf = new Uint32Array(C);
  const thresholds = new Float32Array(C);
  ordered.forEach(({ id, piece }, c) => {
    thresholds[c] = piece.tag.threshold;
    if (piece.builtinRow >= 0) {
      rowOf[c] = piece.builtinRow; // segment 0
      return;
    }
    const place = layout.places.get(id)!;
    segmentOf[c] = first + place.segment;
    rowOf[c] = place.row;
  });
  return composeLabelBank({ key, segments, tags: { segmentOf, rowOf, thresholds } });
}

/**
 * One tag's piece, and its own rows when they must be (re)built: a tag whose rows are exactly a
 * built-in row has none, and one whose rows did not change keeps the previous compile's.
 */
function buildPiece(
  row: SnapshotTagRow,
  stored: { rows: SnapshotDescriptionRow[]; vectors: Float32Array[] },
  names: Record<string, string>,
  prev: Compiled | undefined,
  builtin: BuiltinVocabulary | undefined,
  E: number,
  defaultThreshold: number,
): { piece: Piece; rows: Float32Array[] | undefined } {
  const useBuiltin = row.builtinIndex !== null && row.useBuiltinDescriptions && builtin !== undefined;
  const builtinCount = useBuiltin ? (builtin!.tags[row.builtinIndex!]?.descriptionCount ?? 0) : 0;
  const count = builtinCount + stored.rows.length;
  const builtinRow = useBuiltin && stored.rows.length === 0 ? row.builtinIndex! : -1;
  // only own rows need a signature (one process has one pack, so a built-in index names its rows)
  const signature = builtinRow >= 0 ? '' : `${useBuiltin ? `b${row.builtinIndex};` : ''}${stored.rows.map((r) => r.textHash).join(',')}`;
  // views, not copies: the segment builder copies them once, into the segment
  let rows: Float32Array[] | undefined;
  if (builtinRow < 0 && count > 0 && prev?.pieces.get(row.id)?.signature !== signature) {
    rows = [...stored.vectors];
    if (useBuiltin) {
      const packed = segmentRowEmbeddings(builtin!.segment, row.builtinIndex!);
      rows.unshift(...Array.from({ length: builtinCount }, (_, d) => packed.subarray(d * E, (d + 1) * E)));
    }
  }
  const threshold = thresholdOf(row, builtin, defaultThreshold);
  if (builtinRow >= 0 && isAsPacked(row, names, builtin!)) {
    return { piece: { signature, count, tag: new PackedTag(row.id, builtin!, row.builtinIndex!, threshold), builtinRow }, rows };
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
    threshold,
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
  return { piece: { signature, count, tag, builtinRow }, rows };
}

/** Whether a built-in tag is exactly as the pack has it: its name, its Chinese name only, ready. */
function isAsPacked(row: SnapshotTagRow, names: Record<string, string>, builtin: BuiltinVocabulary): boolean {
  const packed = builtin.tags[row.builtinIndex!]!;
  if (row.name !== packed.name || row.descriptionState !== 'READY' || row.descriptionError !== null) return false;
  const languages = Object.keys(names);
  return packed.nameZh === undefined ? languages.length === 0 : languages.length === 1 && names.zh === packed.nameZh;
}

/**
 * The previous compile's piece of a tag, by id: its kept piece, or a built-in tag as packed made
 * again from its pack row and threshold (the id → position map lives only for this compile).
 */
function previousPieces(prev: Compiled, tags: PreviousTags, pack: BuiltinVocabulary | undefined): (id: string) => Piece | undefined {
  return (id) => {
    const kept = prev.pieces.get(id);
    if (kept) return kept;
    const p = tags.position(id);
    if (p === undefined || prev.packedRow[p]! < 0) return undefined;
    const row = prev.packedRow[p]!;
    return { signature: '', count: pack!.tags[row]!.descriptionCount, tag: new PackedTag(id, pack!, row, prev.packedThreshold[p]!), builtinRow: row };
  };
}

/** The previous compile's tags as the next compile reads them; made once per compile, not kept. */
export interface PreviousTags extends PreviousCompile {
  /** A tag's position in the previous compile's order. */
  position(tagId: string): number | undefined;
}

/** What the previous compile tells the revision reader and the compiler: its order, and where each tag was. */
export function previousTags(prev: Compiled): PreviousTags {
  const order = prev.order.toArray();
  const positions = new Map(order.map((id, p) => [id, p]));
  return { revision: prev.revision, order, has: (id) => positions.has(id), position: (id) => positions.get(id) };
}

/** What the tag entries hold besides the segments (measured: `bench/tenants.bench.ts` prints heap against the budget). */
function metadataBytes(pieces: Iterable<Piece>): number {
  let bytes = 0;
  for (const p of pieces) {
    // the piece, its tag entry, id and map entries, and the heap V8 keeps committed around them:
    // calibrated on the process's resident memory per seeded vocabulary after a collection
    // (bench/tenants.bench.ts), so that the budget bounds resident memory, not only live objects
    bytes += 660 + 2 * p.tag.name.length;
    if (p.tag.descriptionSource !== 'BUILTIN') for (const d of p.tag.descriptions) bytes += 48 + 2 * (d.text?.length ?? 0);
    for (const n of Object.values(p.tag.names)) bytes += 64 + 2 * n.length;
  }
  return bytes;
}

/**
 * A built-in tag as packed beyond its id (36), bank map (14) and packed row and threshold (8):
 * calibrated like the entries above (bench/tenants.bench.ts, heap and RSS per seeded vocabulary).
 */
const PACKED_TAG_BYTES = 185;

