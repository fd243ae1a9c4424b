import { notFound } from '../../core/errors.ts';
import { isUuid } from '../../core/ids.ts';
import type { Logger } from '../../core/log.ts';
import { holdSegments, SegmentArena, type ArenaStats, type InferenceEngine, type SegmentPrecision } from '../../inference/index.ts';
import type { SnapshotReader } from '../repository/snapshots.ts';
import { BankCache } from './bank-cache.ts';
import { compileRevision, previousTags, type Compiled } from './compiler.ts';
import type { EmbeddingCache } from './embedding-cache.ts';
import { readRevision } from './revision-reader.ts';
import type { VocabularySnapshot } from './snapshot.ts';

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
  /** Own segments built, over all compiles (the others were reused from the previous revision). */
  segmentsBuilt: number;
  /** Compiled snapshots too large for the budget (served, not kept). */
  oversize: number;
  /** The shared memory own segments are built in (its capacity is the budget). */
  arena: ArenaStats;
  /** Timings of the latest compile (ms): the REPEATABLE READ read, embeddings, segments. */
  lastCompile?: { totalMs: number; readMs: number; embedMs: number; buildMs: number; tags: number; rebuilt: number; segments: number; segmentsBuilt: number };
}

export interface LabelBankServiceOptions {
  snapshots: SnapshotReader;
  engine: InferenceEngine;
  embeddings: EmbeddingCache;
  /** Memory for compiled vocabularies across all tenants (what they own: the built-in segment is not counted). */
  maxBytes: number;
  defaultThreshold: number;
  /** Tags per own segment at most. */
  segmentTags: number;
  /** Storage of own segments. */
  precision: SegmentPrecision;
  log: Logger;
}

/**
 * The newest revision of a vocabulary as a label bank: a cached compile when it is current,
 * else a compile of one REPEATABLE READ snapshot (so a bank is always exactly one revision
 * even while admins edit), incremental against the cached one: only tags whose revision is
 * newer are read again and re-embedded. Concurrent callers share one compile.
 */
export class LabelBankService {
  private readonly cache: BankCache;
  private readonly inflight = new Map<string, { revision: number; promise: Promise<Compiled> }>();
  private readonly counters = { hits: 0, misses: 0, compiles: 0, incremental: 0, tagsRebuilt: 0, segmentsBuilt: 0 };
  private lastCompile: LabelBankStats['lastCompile'];

  /**
   * Own segments live here: memory bounded by the budget and reused the moment an evicted
   * vocabulary's last reader is done, rather than when the collector gets to it.
   */
  private readonly arena: SegmentArena;

  constructor(private readonly options: LabelBankServiceOptions) {
    this.cache = new BankCache(options.maxBytes, options.log);
    this.arena = new SegmentArena(Math.max(options.maxBytes, 1024));
    // a segment that does not fit makes room by evicting the least recently used vocabularies
    this.arena.reclaim = () => this.cache.evictOldest();
  }

  stats(): LabelBankStats {
    const { cache } = this;
    return { entries: cache.entries, bytes: cache.bytes, maxBytes: cache.maxBytes, ...this.counters, oversize: cache.oversize, arena: this.arena.stats(), lastCompile: this.lastCompile };
  }

  /** Drops a vocabulary's compiled bank (it was deleted; edits need nothing: revisions tell). */
  evict(vocabularyId: string): void {
    this.cache.evict(vocabularyId);
  }

  /**
   * The newest revision of a tenant's vocabulary, compiled. NOT_FOUND for a vocabulary of
   * another tenant, exactly as for a missing one.
   */
  async forVocabulary(tenantId: string, vocabularyId: string): Promise<VocabularySnapshot> {
    if (!isUuid(tenantId) || !isUuid(vocabularyId)) throw notFound('vocabulary');
    const revision = await this.options.snapshots.latestRevision(tenantId, vocabularyId);
    if (revision === undefined) throw notFound('vocabulary');
    const encoderId = this.options.engine.info.textEncoderId;
    const cached = this.cache.get(vocabularyId);
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

  private async compile(tenantId: string, vocabularyId: string, cached: Compiled | undefined): Promise<Compiled> {
    // the previous compile's segments are read (and reused) by this one: held until it is kept,
    // whatever the cache evicts meanwhile
    const releasePrev = cached && holdSegments(cached.segments.map((s) => s.segment));
    const prev = releasePrev ? cached : undefined;
    try {
      return await this.compileFrom(tenantId, vocabularyId, prev);
    } finally {
      releasePrev?.();
    }
  }

  private async compileFrom(tenantId: string, vocabularyId: string, prev: Compiled | undefined): Promise<Compiled> {
    const t0 = performance.now();
    // the previous compile's order and positions, made once for the reader and the compiler
    const tags = prev && previousTags(prev);
    const read = await readRevision(this.options.snapshots, tenantId, vocabularyId, tags);
    const readMs = performance.now() - t0;
    const { compiled, built, segmentsBuilt, embedMs, buildMs } = await compileRevision({ ...this.options, arena: this.arena }, tenantId, vocabularyId, read, prev && tags && { compiled: prev, tags });
    try {
      this.cache.keep(compiled);
    } finally {
      // the cache holds what it kept; segments of a compile it did not keep (a newer revision was
      // kept meanwhile) are freed now, and its callers are told to fetch the vocabulary again
      built.forEach((s) => s.lifetime?.release());
    }
    this.counters.tagsRebuilt += read.rows.length;
    this.counters.segmentsBuilt += segmentsBuilt;
    this.counters.compiles++;
    if (prev) this.counters.incremental++;
    const segments = compiled.snapshot.bank?.segments.length ?? 0;
    this.lastCompile = { totalMs: performance.now() - t0, readMs, embedMs, buildMs, tags: compiled.order.length, rebuilt: read.rows.length, segments, segmentsBuilt };
    return compiled;
  }
}
