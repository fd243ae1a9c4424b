/**
 * The arena own segments live in: blocks reference counted, freed the moment their last holder
 * lets go and reused at once, never more memory than its capacity.
 */
import { describe, expect, it } from 'vitest';
import { holdSegments, SegmentBuilder, segmentRowEmbeddings } from '../../src/inference/scoring/label-bank.ts';
import { SegmentArena } from '../../src/inference/scoring/segment-arena.ts';
import { randomUnitRows, seededRandom } from './helpers.ts';

const KiB = 1024;

describe('segment arena', () => {
  it('hands out aligned blocks, frees a block when its last holder releases it, and reuses the memory', () => {
    const arena = new SegmentArena(64 * KiB);
    const a = arena.allocate(1000)!;
    const b = arena.allocate(3000)!;
    expect(a.offset).toBe(0);
    expect(b.offset % 64).toBe(0);
    expect(b.offset).toBeGreaterThanOrEqual(1000);
    expect(arena.stats()).toMatchObject({ blocks: 2, used: a.size + b.size });

    expect(a.hold()).toBe(true); // a second holder
    a.release();
    expect(a.freed).toBe(false);
    a.release();
    expect(a.freed).toBe(true);
    expect(a.hold()).toBe(false); // a late reader is told, not given reused memory
    expect(() => a.release()).toThrow(/released more often than held/);
    expect(arena.stats()).toMatchObject({ blocks: 1, used: b.size });

    // the freed range is the first fit for the next block of its size
    const c = arena.allocate(900)!;
    expect(c.offset).toBe(0);
    // neighbours merge: freeing everything leaves one range a block of the whole capacity fits in
    b.release();
    c.release();
    expect(arena.stats()).toMatchObject({ blocks: 0, used: 0 });
    const whole = arena.allocate(64 * KiB)!;
    expect(whole.offset).toBe(0);
    whole.release();
  });

  it('never grows past its capacity: a block that does not fit asks reclaim to free one, or is refused', () => {
    const arena = new SegmentArena(8 * KiB);
    const live = [arena.allocate(3 * KiB)!, arena.allocate(3 * KiB)!];
    let reclaims = 0;
    arena.reclaim = () => {
      reclaims++;
      const oldest = live.shift();
      oldest?.release();
      return oldest !== undefined;
    };
    const third = arena.allocate(3 * KiB)!;
    expect(reclaims).toBe(1);
    expect(third.offset).toBe(0); // the oldest block's memory, reused
    expect(arena.stats().committed).toBeLessThanOrEqual(8 * KiB);

    // larger than the capacity: refused without evicting anything
    expect(arena.allocate(9 * KiB)).toBeUndefined();
    expect(reclaims).toBe(1);
    // fits only once everything is freed; with a holder reclaim cannot remove, it is refused
    expect(third.hold()).toBe(true);
    expect(arena.allocate(7 * KiB)).toBeUndefined();
    expect(live).toHaveLength(0);
    expect(arena.stats()).toMatchObject({ misses: 2, blocks: 1 });
  });

  it('builds segments in its blocks: views of its one buffer, freed by the last holder, abandoned builds give back their block', () => {
    const arena = new SegmentArena(1024 * KiB);
    const E = 8;
    const rand = seededRandom(3);
    const rows = [randomUnitRows(2, E, rand), randomUnitRows(3, E, rand)];
    const builder = new SegmentBuilder('s1', 2, 3, E, 'float32', arena);
    rows.forEach((r, i) => builder.setTag(i, r));
    const segment = builder.build();
    expect(segment.embeds.buffer).toBe(arena.buffer);
    expect(segment.mask.buffer).toBe(arena.buffer);
    expect(Array.from(segmentRowEmbeddings(segment, 1))).toEqual(Array.from(rows[1]!));
    expect(Array.from(segment.mask)).toEqual([1, 1, 0, 1, 1, 1]);

    // float16 in the same arena, past the first segment's memory
    const half = new SegmentBuilder('s2', 1, 2, E, 'float16', arena).setTag(0, rows[0]!).build();
    expect(half.embeds).toBeInstanceOf(Uint16Array);
    expect(half.embeds.byteOffset).toBeGreaterThanOrEqual(segment.mask.byteOffset + segment.mask.length);

    // holding both, then the builders' holds released: memory stays until the last holder is done
    const release = holdSegments([segment, half, segment])!;
    segment.lifetime!.release();
    half.lifetime!.release();
    expect(arena.stats().blocks).toBe(2);
    release();
    expect(arena.stats()).toMatchObject({ blocks: 0, used: 0 });
    expect(holdSegments([segment])).toBeUndefined();

    const failing = new SegmentBuilder('s3', 1, 1, E, 'float32', arena);
    expect(() => failing.setTag(0, new Float32Array(E).fill(Number.NaN))).toThrow(/non-finite/);
    expect(arena.stats().blocks).toBe(1);
    failing.abandon();
    expect(arena.stats().blocks).toBe(0);
  });

  it('falls back to memory of its own when the arena cannot take a segment', () => {
    const arena = new SegmentArena(4 * KiB);
    const segment = new SegmentBuilder('big', 4, 4, 64, 'float32', arena).setTag(0, new Float32Array(64).fill(0.125)).setTag(1, new Float32Array(64)).setTag(2, new Float32Array(64)).setTag(3, new Float32Array(64)).build();
    expect(segment.lifetime).toBeUndefined();
    expect(segment.embeds.buffer).not.toBe(arena.buffer);
    expect(segment.embeds.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(holdSegments([segment])).toBeTypeOf('function');
  });
});
