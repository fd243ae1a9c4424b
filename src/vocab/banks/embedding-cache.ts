import { LRUCache } from 'lru-cache';
import { chunks } from '../../core/chunks.ts';
import type { Logger } from '../../core/log.ts';
import type { InferenceEngine } from '../../inference/index.ts';
import type { EmbeddingTable } from '../repository/embeddings.ts';
import { sha256Hex } from '../../core/hash.ts';

export interface HashedText {
  readonly hash: string;
  readonly text: string;
}

export interface EmbedResult {
  /** One L2-normalised vector per input, in input order (identical texts share one array). */
  readonly vectors: Float32Array[];
  /** Per input: whether the encoder cut it to its context; `undefined` when served from a cache. */
  readonly truncated: (boolean | undefined)[];
  readonly memoryHits: number;
  readonly databaseHits: number;
  readonly computed: number;
}

export interface EmbeddingCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  memoryHits: number;
  databaseHits: number;
  computed: number;
  writeErrors: number;
  /** Rows waiting to be written. */
  pendingWrites: number;
}

export interface EmbeddingCacheOptions {
  table: EmbeddingTable;
  engine: InferenceEngine;
  /** Memory for vectors held in process (the LRU in front of the database). */
  maxBytes: number;
  log: Logger;
}

interface Loaded {
  vector: Float32Array;
  truncated?: boolean;
}

/** Rough bytes of one LRU entry besides the vector: its key string and the map's bookkeeping. */
const ENTRY_OVERHEAD = 320;
/** Texts per pipeline step (database lookup, encoder call, write). */
const CHUNK = 256;
/**
 * New vectors are written to the table behind the callers' backs; beyond this many rows
 * waiting to be written, callers wait for the writes (back-pressure).
 */
const MAX_PENDING_ROWS = 65_536;

/**
 * Content-addressed CLIP text embeddings: key = (text-encoder id, SHA-256 of the text).
 * An in-memory LRU bounded in bytes sits in front of the `text_embeddings` table, which all
 * replicas and tenants share. The table stores no text, so sharing rows reveals nothing: a
 * caller must already know a text to ask for its vector. The encoder id is part of every
 * key, so a new text encoder never sees another encoder's vectors.
 */
export class EmbeddingCache {
  private readonly lru: LRUCache<string, Float32Array>;
  private readonly inflight = new Map<string, Promise<Loaded>>();
  private readonly table: EmbeddingTable;
  private readonly engine: InferenceEngine;
  private readonly log: Logger;
  private readonly counters = { memoryHits: 0, databaseHits: 0, computed: 0, writeErrors: 0 };
  /** Writes of new vectors still running (write-behind), and the rows they hold. */
  private readonly writes = new Set<Promise<void>>();
  private pendingRows = 0;

  constructor(options: EmbeddingCacheOptions) {
    this.table = options.table;
    this.engine = options.engine;
    this.log = options.log;
    this.lru = new LRUCache<string, Float32Array>({
      maxSize: Math.max(1, options.maxBytes),
      sizeCalculation: (v) => v.byteLength + ENTRY_OVERHEAD,
    });
  }

  /** The text encoder whose vectors this cache serves. */
  private get encoderId(): string {
    return this.engine.info.textEncoderId;
  }

  stats(): EmbeddingCacheStats {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, maxBytes: this.lru.maxSize, ...this.counters, pendingWrites: this.pendingRows };
  }

  /** Resolves when every new vector so far is in the table (or its write failed and was logged). */
  async flush(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }

  /** Drops the in-memory entries (the database rows stay). */
  clearMemory(): void {
    this.lru.clear();
  }

  embed(texts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<EmbedResult> {
    return this.embedHashed(
      texts.map((text) => ({ text, hash: sha256Hex(text) })),
      options,
    );
  }

  /** Like `embed` for texts whose hashes the caller already has (description rows store them). */
  async embedHashed(items: readonly HashedText[], options: { signal?: AbortSignal } = {}): Promise<EmbedResult> {
    const encoderId = this.encoderId;
    const keyOf = (hash: string) => `${encoderId}:${hash}`;
    const found = new Map<string, Loaded>();
    const waiting = new Map<string, Promise<Loaded>>();
    const missing = new Map<string, string>();
    let memoryHits = 0;
    for (const { hash, text } of items) {
      if (found.has(hash) || waiting.has(hash) || missing.has(hash)) continue;
      const key = keyOf(hash);
      const hit = this.lru.get(key);
      if (hit) {
        found.set(hash, { vector: hit });
        memoryHits++;
        continue;
      }
      const running = this.inflight.get(key);
      if (running) waiting.set(hash, running);
      else missing.set(hash, text);
    }
    this.counters.memoryHits += memoryHits;

    let databaseHits = 0;
    let computed = 0;
    if (missing.size > 0) {
      // Register the work before the first await, so concurrent callers share it.
      const settle = new Map<string, { resolve: (l: Loaded) => void; reject: (e: unknown) => void }>();
      for (const hash of missing.keys()) {
        const key = keyOf(hash);
        const promise = new Promise<Loaded>((resolve, reject) => settle.set(hash, { resolve, reject }));
        promise.catch(() => {}); // a failure reaches the callers that await it, never the process
        this.inflight.set(key, promise);
        waiting.set(hash, promise);
      }
      try {
        const counts = await this.load(encoderId, missing, settle, options.signal);
        databaseHits = counts.databaseHits;
        computed = counts.computed;
      } catch (e) {
        for (const s of settle.values()) s.reject(e);
        throw e;
      } finally {
        for (const hash of missing.keys()) this.inflight.delete(keyOf(hash));
      }
    }
    for (const [hash, promise] of waiting) found.set(hash, await promise);
    return {
      vectors: items.map((i) => found.get(i.hash)!.vector),
      truncated: items.map((i) => found.get(i.hash)!.truncated),
      memoryHits,
      databaseHits,
      computed,
    };
  }

  /** Database first, then the encoder for what the database lacks; resolves `settle` as it goes. */
  private async load(
    encoderId: string,
    missing: Map<string, string>,
    settle: Map<string, { resolve: (l: Loaded) => void }>,
    signal: AbortSignal | undefined,
  ): Promise<{ databaseHits: number; computed: number }> {
    const dim = this.engine.info.embedDim;
    // A pipeline over chunks: the database lookup of the next chunk runs while this one's misses
    // are encoded (two chunks in the encoder at once). New vectors are written behind the
    // caller's back (write-behind): they are served from memory at once, and a lost write only
    // costs a recomputation.
    const parts = chunks([...missing.entries()], CHUNK);
    const lookups: Promise<Set<string>>[] = [];
    const lookup = (i: number) => (lookups[i] ??= this.lookup(encoderId, dim, parts[i]!, settle));
    const encoding: Promise<void>[] = [];
    let databaseHits = 0;
    let computed = 0;
    const encodeChunk = async (chunk: [string, string][]) => {
      const out = await this.engine.embedTexts(
        chunk.map(([, text]) => text),
        { signal },
      );
      if (out.textEncoderId !== encoderId || out.dim !== dim) {
        throw new Error(`the text encoder changed while embedding (${out.textEncoderId}, dim ${out.dim})`);
      }
      const vectors = chunk.map(([hash], i) => {
        const vector = out.embeddings.slice(i * dim, (i + 1) * dim);
        this.lru.set(`${encoderId}:${hash}`, vector);
        settle.get(hash)!.resolve({ vector, truncated: out.truncated[i] });
        return vector;
      });
      this.counters.computed += chunk.length;
      this.writeBehind(encoderId, dim, chunk.map(([hash]) => hash), vectors);
    };
    for (let i = 0; i < parts.length; i++) {
      const found = await lookup(i);
      if (i + 1 < parts.length) void lookup(i + 1).catch(() => {}); // prefetch; awaited next round
      databaseHits += found.size;
      const misses = parts[i]!.filter(([hash]) => !found.has(hash));
      if (misses.length === 0) continue;
      computed += misses.length;
      if (encoding.length >= 2) await encoding.shift();
      while (this.pendingRows > MAX_PENDING_ROWS && this.writes.size > 0) await Promise.race(this.writes);
      const step = encodeChunk(misses);
      step.catch(() => {}); // awaited below; a failure must not also surface as unhandled
      encoding.push(step);
    }
    await Promise.all(encoding);
    this.counters.databaseHits += databaseHits;
    return { databaseHits, computed };
  }

  /** Vectors of a chunk found in the table (resolved at once); returns their hashes. */
  private async lookup(encoderId: string, dim: number, chunk: [string, string][], settle: Map<string, { resolve: (l: Loaded) => void }>): Promise<Set<string>> {
    const rows = await this.table.find(
      encoderId,
      dim,
      chunk.map(([hash]) => hash),
    );
    for (const [hash, vector] of rows) {
      this.lru.set(`${encoderId}:${hash}`, vector);
      settle.get(hash)!.resolve({ vector });
    }
    return new Set(rows.keys());
  }

  private writeBehind(encoderId: string, dim: number, hashes: string[], vectors: Float32Array[]): void {
    this.pendingRows += hashes.length;
    const write: Promise<void> = this.store(encoderId, dim, hashes, vectors).finally(() => {
      this.pendingRows -= hashes.length;
      this.writes.delete(write);
    });
    this.writes.add(write);
  }

  /** Persists vectors; a failure only costs a recomputation later, so it is logged, not thrown. */
  private async store(encoderId: string, dim: number, hashes: string[], vectors: Float32Array[]): Promise<void> {
    try {
      await this.table.store(encoderId, dim, hashes, vectors);
    } catch (err) {
      this.counters.writeErrors++;
      this.log.warn({ err, count: hashes.length }, 'could not store text embeddings');
    }
  }
}
