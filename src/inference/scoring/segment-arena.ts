/**
 * Shared memory for label-bank segments that come and go (vocabularies' own segments), carved out
 * of one growable SharedArrayBuffer of fixed capacity.
 *
 * Why not one SharedArrayBuffer per segment: such a buffer is freed only when every thread that
 * saw it has collected its handle, and V8 does not count shared memory toward its collection
 * heuristics, so under churn (thousands of tenants, an LRU evicting a segment per cold compile)
 * evicted segments piled up to 2.5 GiB beyond a 1 GiB budget between major collections. Blocks of
 * an arena are freed the moment their last holder lets go, reused at once, and the arena never
 * holds more than its capacity, whatever the collector does.
 *
 * Blocks are reference counted: whoever reads a block's memory holds it (the bank cache for each
 * cached vocabulary using it, the engine for the length of a decode, a compile for the rows it
 * copies). A block nobody holds is freed; `hold()` on a freed block fails, which tells a late
 * reader to fetch its vocabulary again instead of reading reused memory.
 */
import type { SegmentLifetime } from './label-bank.ts';

/** Block offsets and sizes are multiples of this (typed-array alignment, with room to spare). */
const ALIGN = 64;
/** The buffer grows in steps of this much (its pages are mapped on first write, not on growth). */
const GROW_STEP = 32 * 1024 * 1024;

export interface ArenaStats {
  /** Most bytes the arena may hold. */
  capacity: number;
  /** Bytes of the buffer grown so far (an upper bound on what it has made resident). */
  committed: number;
  /** Bytes in live blocks. */
  used: number;
  blocks: number;
  /** Allocations that did not fit even after reclaiming (their callers used memory of their own). */
  misses: number;
}

type GrowableSharedArrayBuffer = SharedArrayBuffer & { grow(bytes: number): void };
type GrowableSharedArrayBufferCtor = new (length: number, options: { maxByteLength: number }) => GrowableSharedArrayBuffer;

export class SegmentArena {
  readonly buffer: SharedArrayBuffer;
  /**
   * Called when an allocation does not fit: frees something (e.g. evicts the least recently used
   * vocabulary) and returns true, or returns false when there is nothing left to free.
   */
  reclaim: () => boolean = () => false;
  /** Free ranges [offset, end), sorted by offset, never adjacent (merged on free). */
  private readonly free: { offset: number; end: number }[] = [];
  private used = 0;
  private blocks = 0;
  private misses = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < ALIGN) throw new RangeError(`arena capacity must be a whole number ≥ ${ALIGN}, got ${capacity}`);
    this.capacity = capacity - (capacity % ALIGN);
    this.buffer = new (SharedArrayBuffer as unknown as GrowableSharedArrayBufferCtor)(0, { maxByteLength: this.capacity });
  }

  stats(): ArenaStats {
    return { capacity: this.capacity, committed: this.buffer.byteLength, used: this.used, blocks: this.blocks, misses: this.misses };
  }

  /**
   * A block of at least `bytes`, held once by the caller; undefined when it cannot fit even after
   * `reclaim` has freed all it could (a block larger than the capacity never fits).
   */
  allocate(bytes: number): ArenaBlock | undefined {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    if (size <= this.capacity) {
      for (;;) {
        const offset = this.take(size) ?? this.grow(size);
        if (offset !== undefined) {
          this.used += size;
          this.blocks++;
          return new ArenaBlock(this, offset, size);
        }
        if (!this.reclaim()) break;
      }
    }
    this.misses++;
    return undefined;
  }

  /** First fit, lowest address first: live blocks stay packed toward the start of the buffer. */
  private take(size: number): number | undefined {
    for (let i = 0; i < this.free.length; i++) {
      const range = this.free[i]!;
      if (range.end - range.offset < size) continue;
      const offset = range.offset;
      range.offset += size;
      if (range.offset === range.end) this.free.splice(i, 1);
      return offset;
    }
    return undefined;
  }

  /** Room at the end of the buffer, growing it (up to the capacity) when the tail is too short. */
  private grow(size: number): number | undefined {
    const tail = this.free.at(-1);
    const start = tail && tail.end === this.buffer.byteLength ? tail.offset : this.buffer.byteLength;
    const end = start + size;
    if (end > this.capacity) return undefined;
    if (end > this.buffer.byteLength) {
      (this.buffer as GrowableSharedArrayBuffer).grow(Math.min(this.capacity, Math.ceil(end / GROW_STEP) * GROW_STEP));
    }
    if (tail && tail.offset === start) this.free.pop();
    if (end < this.buffer.byteLength) this.release(end, this.buffer.byteLength - end, false);
    return start;
  }

  /** @internal a block's memory back to the free list (merged with its neighbours). */
  release(offset: number, size: number, live = true): void {
    if (live) {
      this.used -= size;
      this.blocks--;
    }
    const end = offset + size;
    let i = this.free.findIndex((r) => r.offset >= end);
    if (i < 0) i = this.free.length;
    const before = this.free[i - 1];
    const after = this.free[i];
    if (before && before.end === offset) {
      before.end = end;
      if (after && after.offset === end) {
        before.end = after.end;
        this.free.splice(i, 1);
      }
    } else if (after && after.offset === end) {
      after.offset = offset;
    } else {
      this.free.splice(i, 0, { offset, end });
    }
  }
}

/** A range of the arena's buffer, freed when its last holder releases it. */
export class ArenaBlock implements SegmentLifetime {
  private holders = 1;

  constructor(
    private readonly arena: SegmentArena,
    readonly offset: number,
    readonly size: number,
  ) {}

  get buffer(): SharedArrayBuffer {
    return this.arena.buffer;
  }

  get freed(): boolean {
    return this.holders === 0;
  }

  hold(): boolean {
    if (this.holders === 0) return false;
    this.holders++;
    return true;
  }

  release(): void {
    if (this.holders === 0) throw new Error('arena block released more often than held');
    if (--this.holders === 0) this.arena.release(this.offset, this.size);
  }
}
