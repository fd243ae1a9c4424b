import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { DescriptionSource, DescriptionState } from '../../generated/prisma/client.ts';
import { notFound } from '../../core/errors.ts';
import type { BuiltinVocabulary, InferenceEngine, LabelBank } from '../../inference/index.ts';
import type { Logger } from '../../core/log.ts';
import type { EmbeddingCache } from './embedding-cache.ts';
import { isUuid } from '../use-cases/names.ts';
import { thresholdOf } from '../context.ts';
import { translateDbError } from '../../db/client.ts';
import { AppError } from '../../core/errors.ts';

export interface SnapshotDescription {
  readonly source: DescriptionSource;
  /** Null for BUILTIN descriptions (embeddings only). */
  readonly text: string | null;
}

/** One scored tag of a compiled vocabulary, in bank order. */
export interface SnapshotTag {
  readonly id: string;
  readonly name: string;
  /** Names in other languages by language tag ("zh" for the built-in Chinese names). */
  readonly names: Readonly<Record<string, string>>;
  /** The threshold in force. */
  readonly threshold: number;
  readonly builtin: boolean;
  readonly status: DescriptionState;
  readonly statusReason: string | null;
  /** Where its descriptions came from: BUILTIN, LLM, MANUAL (only hand-written) or TEMPLATE. */
  readonly descriptionSource: DescriptionSource;
  /** True while its own descriptions are not ready (PENDING, GENERATING, FAILED): what it has stands in. */
  readonly usedFallback: boolean;
  /** The descriptions behind the bank's rows for this tag, in row order (for "why this tag"). */
  readonly descriptions: readonly SnapshotDescription[];
}

/** One revision of a vocabulary, compiled for the engine. Every field is of that one revision. */
export interface VocabularySnapshot {
  readonly tenantId: string;
  readonly vocabularyId: string;
  readonly revision: number;
  /** Null when no enabled tag has a description (nothing to score). */
  readonly bank: LabelBank | null;
  /** `tags[i]` is row i of the bank. */
  readonly tags: readonly SnapshotTag[];
  /** Enabled tags left out because they have no description. */
  readonly skipped: readonly { id: string; name: string }[];
}

export interface LabelBankStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  compiles: number;
  /** Compiles that reused the previous revision's per-tag pieces. */
  incremental: number;
  /** Tags whose pieces were rebuilt, over all compiles. */
  tagsRebuilt: number;
  /** Compiled snapshots too large for the budget (served, not kept). */
  oversize: number;
  /** Timings of the latest compile (ms): the REPEATABLE READ read, embeddings, packing. */
  lastCompile?: { totalMs: number; readMs: number; embedMs: number; buildMs: number; tags: number; rebuilt: number; packing: string };
}

interface Piece {
  /** Identity of the rows: built-in row + description hashes. Same signature ⇒ same embeddings. */
  signature: string;
  /** [n × E]; after a compile, a view into that compile's bank. */
  embeds: Float32Array;
  count: number;
  tag: SnapshotTag;
  /** The pack's built-in row when the tag is exactly that row, else -1. */
  builtinRow: number;
}

/** The memory behind a lineage of banks of one vocabulary. */
interface BankBuffers {
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

const EMPTY_BUFFERS: BankBuffers = { embeds: new SharedArrayBuffer(0), mask: new SharedArrayBuffer(0), D: 0, E: 0, capacityRows: 0, usedRows: 0, borrowed: true };

interface Compiled {
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
  bytes: number;
}

interface TagRow {
  id: string;
  name: string;
  threshold: number | null;
  builtin_index: number | null;
  use_builtin_descriptions: boolean;
  description_state: DescriptionState;
  description_error: string | null;
}

export interface LabelBankServiceOptions {
  pool: pg.Pool;
  engine: InferenceEngine;
  embeddings: EmbeddingCache;
  /** Memory for compiled vocabularies across all tenants. */
  maxBytes: number;
  defaultThreshold: number;
  log: Logger;
}

const builtinDescriptionLists = new Map<number, readonly SnapshotDescription[]>();
function builtinDescriptions(n: number): readonly SnapshotDescription[] {
  let list = builtinDescriptionLists.get(n);
  if (!list) {
    list = Object.freeze(Array.from({ length: n }, () => Object.freeze({ source: 'BUILTIN' as const, text: null })));
    builtinDescriptionLists.set(n, list);
  }
  return list;
}

/**
 * Compiles vocabulary revisions into label banks and keeps them under a memory budget shared
 * by all tenants (LRU by bytes, one entry per vocabulary: its newest compiled revision).
 *
 * A compile reads the revision and its tags in one REPEATABLE READ transaction, so a bank is
 * always exactly one revision even while admins edit. It is incremental: only tags whose
 * revision is newer than the previous compile's are read again and re-embedded; the other
 * tags' pieces (embeddings) are copied from the previous bank. Built-in tags take the pack's
 * own description embeddings (no rows in the database).
 */
export class LabelBankService {
  private readonly lru: LRUCache<string, Compiled>;
  private readonly inflight = new Map<string, { revision: number; promise: Promise<Compiled> }>();
  private readonly counters = { hits: 0, misses: 0, compiles: 0, incremental: 0, tagsRebuilt: 0, oversize: 0 };
  private lastCompile: LabelBankStats['lastCompile'];

  constructor(private readonly options: LabelBankServiceOptions) {
    this.lru = new LRUCache<string, Compiled>({
      maxSize: Math.max(1, options.maxBytes),
      sizeCalculation: (c) => Math.max(1, c.bytes),
    });
  }

  stats(): LabelBankStats {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, maxBytes: this.lru.maxSize, ...this.counters, lastCompile: this.lastCompile };
  }

  /** Drops a vocabulary's compiled bank (it was deleted; edits need nothing: revisions tell). */
  evict(vocabularyId: string): void {
    this.lru.delete(vocabularyId);
  }

  /**
   * The newest revision of a tenant's vocabulary, compiled. NOT_FOUND for a vocabulary of
   * another tenant, exactly as for a missing one.
   */
  async forVocabulary(tenantId: string, vocabularyId: string): Promise<VocabularySnapshot> {
    if (!isUuid(tenantId) || !isUuid(vocabularyId)) throw notFound('vocabulary');
    const revision = await this.currentRevision(tenantId, vocabularyId);
    const encoderId = this.options.engine.info.textEncoderId;
    const cached = this.lru.get(vocabularyId);
    if (cached && cached.tenantId === tenantId && cached.encoderId === encoderId && cached.revision >= revision) {
      this.counters.hits++;
      return cached.snapshot;
    }
    this.counters.misses++;
    const running = this.inflight.get(vocabularyId);
    if (running && running.revision >= revision) return (await running.promise).snapshot;
    const prev = cached && cached.tenantId === tenantId && cached.encoderId === encoderId ? cached : undefined;
    const promise = this.compile(tenantId, vocabularyId, prev);
    const entry = { revision, promise };
    this.inflight.set(vocabularyId, entry);
    try {
      return (await promise).snapshot;
    } finally {
      if (this.inflight.get(vocabularyId) === entry) this.inflight.delete(vocabularyId);
    }
  }

  private async currentRevision(tenantId: string, vocabularyId: string): Promise<number> {
    const { rows } = await this.options.pool
      .query<{ revision: number }>('SELECT revision FROM vocabularies WHERE id = $1 AND tenant_id = $2', [vocabularyId, tenantId])
      .catch(translateDbError);
    if (rows.length === 0) throw notFound('vocabulary');
    return rows[0]!.revision;
  }

  private async compile(tenantId: string, vocabularyId: string, prev: Compiled | undefined): Promise<Compiled> {
    const { engine, embeddings, defaultThreshold } = this.options;
    const encoderId = engine.info.textEncoderId;
    const t0 = performance.now();
    const read = await this.readRevision(tenantId, vocabularyId, prev);
    const t1 = performance.now();
    const E = engine.info.embedDim;

    const needBuiltin = read.rows.some((r) => r.builtin_index !== null);
    const builtin: BuiltinVocabulary | undefined = needBuiltin ? await engine.builtinVocabulary() : undefined;

    // embeddings of the changed tags' stored descriptions, through the cache
    const hashed = read.descriptions.map((d) => ({ hash: d.text_hash, text: d.text }));
    const vectors = hashed.length ? (await embeddings.embedHashed(hashed)).vectors : [];
    const t2 = performance.now();
    const byTag = new Map<string, { rows: typeof read.descriptions; vectors: Float32Array[] }>();
    read.descriptions.forEach((d, i) => {
      const entry = byTag.get(d.tag_id) ?? { rows: [], vectors: [] };
      entry.rows.push(d);
      entry.vectors.push(vectors[i]!);
      byTag.set(d.tag_id, entry);
    });
    const namesByTag = new Map<string, Record<string, string>>();
    for (const n of read.names) {
      const entry = namesByTag.get(n.tag_id) ?? {};
      entry[n.language] = n.name;
      namesByTag.set(n.tag_id, entry);
    }

    const fresh = new Map<string, Piece>();
    for (const row of read.rows) {
      const stored = byTag.get(row.id) ?? { rows: [], vectors: [] };
      const useBuiltin = row.builtin_index !== null && row.use_builtin_descriptions && builtin !== undefined;
      const builtinCount = useBuiltin ? (builtin!.tags[row.builtin_index!]?.descriptionCount ?? 0) : 0;
      const signature = `${useBuiltin ? `b${row.builtin_index}:${builtin!.bank.key};` : ''}${stored.rows.map((r) => r.text_hash).join(',')}`;
      const count = builtinCount + stored.rows.length;
      const old = prev?.pieces.get(row.id);
      let embeds: Float32Array;
      if (old && old.signature === signature) {
        embeds = old.embeds;
      } else if (stored.rows.length === 0 && useBuiltin) {
        const D = builtin!.bank.maxDescriptions;
        embeds = builtin!.bank.embeds.subarray(row.builtin_index! * D * E, (row.builtin_index! * D + builtinCount) * E);
      } else {
        embeds = new Float32Array(count * E);
        if (useBuiltin) {
          const D = builtin!.bank.maxDescriptions;
          embeds.set(builtin!.bank.embeds.subarray(row.builtin_index! * D * E, (row.builtin_index! * D + builtinCount) * E));
        }
        stored.vectors.forEach((v, d) => embeds.set(v, (builtinCount + d) * E));
      }
      const threshold = thresholdOf({ threshold: row.threshold, builtinIndex: row.builtin_index }, builtin, defaultThreshold);
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
        names: Object.freeze(namesByTag.get(row.id) ?? {}),
        threshold,
        builtin: row.builtin_index !== null,
        status: row.description_state,
        statusReason: row.description_error,
        descriptionSource: source,
        usedFallback: row.description_state !== 'READY',
        descriptions:
          stored.rows.length === 0
            ? builtinDescriptions(builtinCount)
            : Object.freeze([...builtinDescriptions(builtinCount), ...stored.rows.map((r) => Object.freeze({ source: r.source, text: r.text }))]),
      });
      const builtinRow = useBuiltin && stored.rows.length === 0 ? row.builtin_index! : -1;
      fresh.set(row.id, { signature, embeds, count, tag, builtinRow });
    }
    this.counters.tagsRebuilt += read.rows.length;

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
    const packed = ordered.length > 0 ? this.pack(ordered, rowIds, prev, builtin, E) : undefined;
    let bank: LabelBank | null = null;
    let bytes = 0;
    if (packed) {
      const { buffers, C } = packed;
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
    // metadata: a rough count of what the tag entries hold
    for (const p of pieces.values()) {
      bytes += 160 + 2 * p.tag.name.length;
      if (p.tag.descriptionSource !== 'BUILTIN') for (const d of p.tag.descriptions) bytes += 48 + 2 * (d.text?.length ?? 0);
      for (const n of Object.values(p.tag.names)) bytes += 64 + 2 * n.length;
    }
    const snapshot: VocabularySnapshot = Object.freeze({
      tenantId,
      vocabularyId,
      revision: read.revision,
      bank,
      tags: Object.freeze(ordered.map((p) => p.tag)),
      skipped: Object.freeze(skipped),
    });
    const compiled: Compiled = { tenantId, encoderId, revision: read.revision, snapshot, pieces, order: read.order, rowIds, buffers: packed?.buffers ?? EMPTY_BUFFERS, bytes };
    this.counters.compiles++;
    if (prev) this.counters.incremental++;
    const t3 = performance.now();
    this.lastCompile = { totalMs: t3 - t0, readMs: t1 - t0, embedMs: t2 - t1, buildMs: t3 - t2, tags: pieces.size, rebuilt: read.rows.length, packing: packed?.how ?? 'empty' };
    const current = this.lru.peek(vocabularyId);
    if (!current || current.revision <= compiled.revision) {
      if (bytes > this.lru.maxSize) {
        this.counters.oversize++;
        this.lru.delete(vocabularyId);
        this.options.log.warn({ vocabularyId, bytes, budget: this.lru.maxSize }, 'a compiled vocabulary is larger than the whole label-bank budget; it is not kept');
      } else {
        this.lru.set(vocabularyId, compiled);
      }
    }
    return compiled;
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
  private pack(ordered: Piece[], rowIds: string[], prev: Compiled | undefined, builtin: BuiltinVocabulary | undefined, E: number): { buffers: BankBuffers; C: number; how: string } {
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
      return { buffers: pb, C, how: 'same' };
    }
    if (builtin && C === builtin.bank.tagCount && needD <= builtin.bank.maxDescriptions && ordered.every((p, i) => p.builtinRow === i)) {
      const b = builtin.bank;
      return { buffers: { embeds: b.embeds.buffer as SharedArrayBuffer, mask: b.mask.buffer as SharedArrayBuffer, D: b.maxDescriptions, E, capacityRows: C, usedRows: C, borrowed: true }, C, how: 'builtin' };
    }
    const prevC = prev?.rowIds.length ?? 0;
    if (pb && !pb.borrowed && pb !== EMPTY_BUFFERS && needD <= pb.D && C > prevC && pb.usedRows === prevC && C <= pb.capacityRows && samePrefix(prevC)) {
      const D = pb.D;
      grow(pb.embeds, C * D * E * 4);
      grow(pb.mask, C * D);
      this.writeRows(pb, ordered, prevC, C);
      pb.usedRows = C;
      return { buffers: pb, C, how: 'append' };
    }
    const D = needD;
    const capacityRows = Math.max(C + 64, Math.ceil(C * 1.25));
    const buffers: BankBuffers = {
      embeds: growable(C * D * E * 4, capacityRows * D * E * 4),
      mask: growable(C * D, capacityRows * D),
      D,
      E,
      capacityRows,
      usedRows: C,
      borrowed: false,
    };
    this.writeRows(buffers, ordered, 0, C);
    return { buffers, C, how: 'full' };
  }

  private writeRows(b: BankBuffers, ordered: Piece[], from: number, to: number): void {
    const { D, E } = b;
    const embeds = new Float32Array(b.embeds, 0, to * D * E);
    const mask = new Uint8Array(b.mask, 0, to * D);
    for (let c = from; c < to; c++) {
      const p = ordered[c]!;
      embeds.set(p.embeds, c * D * E);
      mask.fill(1, c * D, c * D + p.count);
      // keep the piece as a view of the bank: no second copy of its embeddings
      p.embeds = embeds.subarray(c * D * E, (c * D + p.count) * E);
    }
  }

  /**
   * Reads one revision in one REPEATABLE READ transaction: its number, its enabled tags in bank
   * order, and everything about the tags changed since `prev`. With a previous compile only the
   * changed tags are read, plus a count that tells whether any tag was deleted since (then the
   * whole tag list is read again).
   */
  private async readRevision(tenantId: string, vocabularyId: string, prev: Compiled | undefined) {
    let client: pg.PoolClient | undefined;
    try {
      client = await this.options.pool.connect();
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const v = await client.query<{ revision: number }>('SELECT revision FROM vocabularies WHERE id = $1 AND tenant_id = $2', [vocabularyId, tenantId]);
      if (v.rows.length === 0) throw notFound('vocabulary');
      const revision = v.rows[0]!.revision;
      let rows: (TagRow & { enabled: boolean })[];
      let order: string[] | undefined;
      if (prev) {
        rows = (
          await client.query<TagRow & { enabled: boolean }>(`SELECT ${TAG_COLUMNS} FROM tags WHERE tenant_id = $1 AND vocabulary_id = $2 AND revision > $3 ${ORDER}`, [
            tenantId,
            vocabularyId,
            prev.revision,
          ])
        ).rows;
        const count = (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM tags WHERE tenant_id = $1 AND vocabulary_id = $2 AND enabled', [tenantId, vocabularyId])).rows[0]!.n;
        const changed = new Set(rows.map((r) => r.id));
        const kept = prev.order.filter((id) => !changed.has(id));
        const added = rows.filter((r) => r.enabled && !prev.pieces.has(r.id)).map((r) => r.id);
        const stillIn = new Set(rows.filter((r) => r.enabled).map((r) => r.id));
        const candidate = [...prev.order.filter((id) => !changed.has(id) || stillIn.has(id)), ...added];
        // every tag of `kept` is unchanged since prev, so still enabled unless it was deleted
        if (candidate.length === count && kept.length + stillIn.size === count) order = candidate;
      }
      if (!order) {
        const list = await client.query({
          text: `SELECT id FROM tags WHERE tenant_id = $1 AND vocabulary_id = $2 AND enabled ${ORDER}`,
          values: [tenantId, vocabularyId],
          rowMode: 'array',
        } as pg.QueryConfig);
        order = (list.rows as unknown as [string][]).map((r) => r[0]);
        if (!prev) {
          rows = (await client.query<TagRow & { enabled: boolean }>(`SELECT ${TAG_COLUMNS} FROM tags WHERE tenant_id = $1 AND vocabulary_id = $2 AND enabled`, [tenantId, vocabularyId])).rows;
        } else {
          // prev's pieces stay valid for tags it has that did not change
          const known = new Set(rows!.map((r) => r.id));
          const missing = order.filter((id) => !prev.pieces.has(id) && !known.has(id));
          if (missing.length) rows!.push(...(await client.query<TagRow & { enabled: boolean }>(`SELECT ${TAG_COLUMNS} FROM tags WHERE id = ANY($1::uuid[]) AND tenant_id = $2`, [missing, tenantId])).rows);
        }
      }
      const enabledRows = rows!.filter((r) => r.enabled);
      const ids = enabledRows.map((r) => r.id);
      let names: { tag_id: string; language: string; name: string }[] = [];
      let descriptions: { tag_id: string; text: string; text_hash: string; source: DescriptionSource }[] = [];
      if (ids.length > 0) {
        const params = [ids, tenantId];
        names = (await client.query('SELECT tag_id, language, name FROM tag_names WHERE tag_id = ANY($1::uuid[]) AND tenant_id = $2', params)).rows;
        descriptions = (
          await client.query(
            `SELECT tag_id, text, text_hash, source FROM tag_descriptions WHERE tag_id = ANY($1::uuid[]) AND tenant_id = $2
              ORDER BY tag_id, position, created_at, id`,
            params,
          )
        ).rows;
      }
      await client.query('COMMIT');
      return { revision, order, rows: enabledRows, names, descriptions };
    } catch (e) {
      await client?.query('ROLLBACK').catch(() => {});
      if (e instanceof AppError) throw e;
      return translateDbError(e);
    } finally {
      client?.release();
    }
  }
}

const TAG_COLUMNS = 'id, enabled, name, threshold, builtin_index, use_builtin_descriptions, description_state, description_error';
/** Bank order: built-in tags in the pack's order, then by creation; names within one request. */
const ORDER = 'ORDER BY builtin_index NULLS LAST, created_at, key, id';

type GrowableSharedArrayBuffer = SharedArrayBuffer & { grow(byteLength: number): void; readonly maxByteLength: number };

/** A SharedArrayBuffer that can grow in place up to `maxBytes` (pages are committed when touched). */
function growable(bytes: number, maxBytes: number): SharedArrayBuffer {
  const Ctor = SharedArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => GrowableSharedArrayBuffer;
  return new Ctor(bytes, { maxByteLength: Math.max(bytes, maxBytes) });
}

function grow(buffer: SharedArrayBuffer, bytes: number): void {
  if (buffer.byteLength < bytes) (buffer as GrowableSharedArrayBuffer).grow(bytes);
}
