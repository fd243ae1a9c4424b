import { LRUCache } from 'lru-cache';
import type { Logger } from '../../core/log.ts';
import { holdSegments } from '../../inference/index.ts';
import type { Compiled } from './compiler.ts';

/**
 * Compiled vocabularies under one memory budget shared by all tenants: an LRU by bytes with one
 * entry per vocabulary, its newest compiled revision. A compile larger than the whole budget is
 * served by its caller and not kept. A kept compile holds its own segments' arena memory (see
 * `SegmentArena`) until it leaves the cache, evicted or replaced by a newer revision.
 */
export class BankCache {
  private readonly lru: LRUCache<string, Compiled>;
  /** Compiles too large for the budget (served, not kept). */
  oversize = 0;

  constructor(
    maxBytes: number,
    private readonly log: Logger,
  ) {
    this.lru = new LRUCache<string, Compiled>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (c) => Math.max(1, c.bytes),
      dispose: (c) => c.segments.forEach((s) => s.segment.lifetime?.release()),
    });
  }

  /** Evicts the least recently used vocabulary; false when the cache is empty. */
  evictOldest(): boolean {
    return this.lru.pop() !== undefined;
  }

  get entries(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  get maxBytes(): number {
    return this.lru.maxSize;
  }

  get(vocabularyId: string): Compiled | undefined {
    return this.lru.get(vocabularyId);
  }

  /**
   * Keeps a compile unless a newer revision of the vocabulary is already kept. Its segments are
   * held before anything is evicted, so a segment it shares with the entry it replaces survives.
   */
  keep(compiled: Compiled): void {
    const vocabularyId = compiled.snapshot.vocabularyId;
    const current = this.lru.peek(vocabularyId);
    if (current === compiled || (current && current.revision > compiled.revision)) return;
    if (compiled.bytes > this.lru.maxSize) {
      this.oversize++;
      this.lru.delete(vocabularyId);
      this.log.warn({ vocabularyId, bytes: compiled.bytes, budget: this.lru.maxSize }, 'a compiled vocabulary is larger than the whole label-bank budget; it is not kept');
      return;
    }
    // the compiler holds what it builds and reuses until this returns, so this cannot fail;
    // were it to, keeping the compile would let a reader see reused memory
    if (!holdSegments(compiled.segments.map((s) => s.segment))) {
      this.log.error({ vocabularyId }, 'a compiled vocabulary points at freed segment memory; it is not kept');
      return;
    }
    this.lru.set(vocabularyId, compiled);
  }

  evict(vocabularyId: string): void {
    this.lru.delete(vocabularyId);
  }
}
