import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import { MicroBatcher } from '../../src/inference/runtime/batcher.ts';

/** A batcher over a hand-driven executor: each batch waits until the test finishes it. */
function harness(options: { slots?: number; maxBatch?: number; maxQueue?: number; maxWaitMs?: number } = {}) {
  const batches: Array<{ group: string; payloads: string[]; finish(fail?: Error): void }> = [];
  let running = 0;
  const batcher = new MicroBatcher<string, string>({
    maxQueue: options.maxQueue ?? 100,
    maxWaitMs: options.maxWaitMs ?? 1_000_000,
    maxBatch: () => options.maxBatch ?? 4,
    freeSlots: () => (options.slots ?? 1) - running,
    execute: (group, payloads) => {
      running++;
      return new Promise<string[]>((resolve, reject) => {
        batches.push({
          group,
          payloads,
          finish: (fail) => {
            running--;
            if (fail) reject(fail);
            else resolve(payloads.map((p) => `${p}!`));
          },
        });
      });
    },
  });
  return { batcher, batches };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('micro-batcher', () => {
  it('starts a full batch at once and holds a partial one for maxWaitMs', async () => {
    const { batcher, batches } = harness({ maxBatch: 2, maxWaitMs: 20 });
    const full = batcher.submit('g', ['a', 'b']);
    expect(batches.map((b) => b.payloads)).toEqual([['a', 'b']]);
    batches[0]!.finish();
    expect(await full).toEqual(['a!', 'b!']);

    const c = batcher.submit('g', ['c']);
    await tick();
    expect(batches).toHaveLength(1); // 'c' waits for company…
    const d = batcher.submit('g', ['d'], { fairnessKey: 'other' });
    expect(batches[1]!.payloads).toEqual(['c', 'd']); // …and 'd' completes the batch
    const partial = [c, d];
    batches[1]!.finish();
    expect(await Promise.all(partial)).toEqual([['c!'], ['d!']]);

    const alone = batcher.submit('g', ['e']);
    while (batches.length < 3) await new Promise((r) => setTimeout(r, 5)); // dispatched by the wait timer
    batches[2]!.finish();
    expect(await alone).toEqual(['e!']);
  });

  it('never mixes groups in one batch', async () => {
    const { batcher, batches } = harness({ maxBatch: 4, maxWaitMs: 0, slots: 2 });
    const x = batcher.submit('x', ['x1', 'x2']);
    const y = batcher.submit('y', ['y1']);
    await tick();
    expect(batches.map((b) => [b.group, b.payloads])).toEqual([
      ['x', ['x1', 'x2']],
      ['y', ['y1']],
    ]);
    batches.forEach((b) => b.finish());
    expect(await Promise.all([x, y])).toEqual([['x1!', 'x2!'], ['y1!']]);
  });

  it('admits a request whole or not at all, with a retry hint when full', async () => {
    const { batcher, batches } = harness({ maxBatch: 2, maxQueue: 3, maxWaitMs: 0 });
    const running = batcher.submit('g', ['a', 'b']); // occupies the only slot
    const queued = batcher.submit('g', ['c', 'd']);
    const refused = await batcher.submit('g', ['e', 'f']).catch((e: AppError) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe('OVERLOADED');
    expect((refused as AppError).details.retryAfterMs).toBeGreaterThan(0);
    expect(batcher.stats().queued).toBe(2); // nothing of the refused request stayed
    const fits = batcher.submit('g', ['g']);
    batches[0]!.finish();
    await tick();
    batches[1]!.finish();
    await tick();
    batches[2]!.finish();
    expect(await Promise.all([running, queued, fits])).toEqual([['a!', 'b!'], ['c!', 'd!'], ['g!']]);
    expect(batcher.stats().overloaded).toBe(1);
  });

  it('fails every request of a failed batch and withdraws their other queued units', async () => {
    const { batcher, batches } = harness({ maxBatch: 2, maxWaitMs: 0 });
    const a = batcher.submit('g', ['a1', 'a2', 'a3']); // a1, a2 run; a3 waits
    const b = batcher.submit('g', ['b1']);
    expect(batcher.stats().queued).toBe(2);
    batches[0]!.finish(new Error('worker died'));
    await expect(a).rejects.toThrow('worker died');
    await tick();
    expect(batches[1]!.payloads).toEqual(['b1']); // a3 was withdrawn, b1 goes next
    batches[1]!.finish();
    expect(await b).toEqual(['b1!']);
    expect(batches).toHaveLength(2);
  });

  it('rotates over fairness keys when it forms batches', async () => {
    const { batcher, batches } = harness({ maxBatch: 3, maxWaitMs: 0 });
    const blocker = batcher.submit('g', ['x', 'y', 'z']);
    const all = [
      ...['a1', 'a2', 'a3', 'a4', 'a5'].map((p) => batcher.submit('g', [p], { fairnessKey: 'a' })),
      ...['b1', 'b2'].map((p) => batcher.submit('g', [p], { fairnessKey: 'b' })),
      batcher.submit('g', ['c1'], { fairnessKey: 'c' }),
    ];
    for (let i = 0; i < 4; i++) {
      batches[i]!.finish();
      await tick();
    }
    await Promise.all([blocker, ...all]);
    expect(batches.slice(1).map((b) => b.payloads)).toEqual([
      ['a1', 'b1', 'c1'],
      ['b2', 'a2', 'a3'], // b's turn after a's
      ['a4', 'a5'],
    ]);
  });

  it('cancels queued units on abort and rejects later submits after close', async () => {
    const { batcher, batches } = harness({ maxBatch: 1, maxWaitMs: 0 });
    const running = batcher.submit('g', ['a']);
    const controller = new AbortController();
    const cancelled = batcher.submit('g', ['b', 'c'], { signal: controller.signal });
    const closing = batcher.submit('g', ['d']);
    controller.abort();
    await expect(cancelled).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(batcher.stats().queued).toBe(1);
    batcher.close(new Error('closed'));
    await expect(closing).rejects.toThrow('closed');
    await expect(batcher.submit('g', ['e'])).rejects.toThrow('closed');
    batches[0]!.finish();
    expect(await running).toEqual(['a!']); // running work still completes
    expect(batches).toHaveLength(1); // b, c and d never ran
  });

  it('admits requests before their work exists, and never refuses the work of an admitted one', async () => {
    const { batcher, batches } = harness({ maxBatch: 2, maxQueue: 4, maxWaitMs: 0 });
    const first = batcher.admit(3);
    const second = batcher.admit(1);
    expect(batcher.stats().admitted).toBe(4);
    // the queue is empty, yet its room is taken: a third request is refused at once, with a hint
    const refused = (() => {
      try {
        batcher.admit(1);
      } catch (e) {
        return e as AppError;
      }
    })();
    expect(refused?.code).toBe('OVERLOADED');
    expect(refused?.details.retryAfterMs).toBeGreaterThan(0);
    expect(batcher.stats().overloaded).toBe(1);

    // admitted work is queued even beyond the room left; other work sees only what is queued
    const running = batcher.submit('g', ['a1', 'a2'], { admission: first }); // runs in the only slot
    const waiting = batcher.submit('g', ['a3', 'a4', 'a5'], { admission: first });
    expect(batcher.stats().queued).toBe(3);
    await expect(batcher.submit('g', ['x', 'y'])).rejects.toMatchObject({ code: 'OVERLOADED' });
    const extra = batcher.submit('g', ['b1'], { admission: second });
    // queued work of admitted requests is counted once: their room is taken, nothing more
    expect(batcher.stats().queued).toBe(4);
    expect(() => batcher.admit(1)).toThrow(expect.objectContaining({ code: 'OVERLOADED' }));
    second.release();
    batcher.admit(1).release(); // the room `second` held is free, though its unit still waits
    batches[0]!.finish();
    await tick();
    batches[1]!.finish();
    await tick();
    batches[2]!.finish();
    expect(await Promise.all([running, waiting, extra])).toEqual([['a1!', 'a2!'], ['a3!', 'a4!', 'a5!'], ['b1!']]);

    // released room is room again; a second release changes nothing
    first.release();
    first.release();
    second.release();
    expect(batcher.stats().admitted).toBe(0);
    const big = batcher.admit(10); // a request larger than the queue takes all of it
    expect(big.units).toBe(4);
    expect(() => batcher.admit(1)).toThrow(expect.objectContaining({ code: 'OVERLOADED' }));
    big.release();
    batcher.admit(1).release();
  });

  it('accepts more queued units than an admission holds, and counts them against later admissions', async () => {
    const { batcher, batches } = harness({ maxBatch: 2, maxQueue: 6, maxWaitMs: 0 });
    const overloaded = (units: number) => {
      try {
        batcher.admit(units).release();
        return null;
      } catch (e) {
        return (e as AppError).code;
      }
    };
    const blocker = batcher.submit('other', ['z']); // holds the only slot
    const room = batcher.admit(2);
    expect(room.units).toBe(2);
    // one unit per segment: the request queues twice what it was admitted for, and is not refused
    const segments = batcher.submit('seg', ['a1', 'a2', 'a3', 'a4'], { admission: room });
    expect(batcher.stats()).toMatchObject({ queued: 4, admitted: 4, overloaded: 0 });
    expect(room.units).toBe(4);
    // later admissions see the four queued units, not the two admitted: 4 + 2 fits six, 4 + 3 does not
    expect(overloaded(3)).toBe('OVERLOADED');
    const second = batcher.admit(2);
    expect(overloaded(1)).toBe('OVERLOADED');
    expect(batcher.stats()).toMatchObject({ admitted: 6, overloaded: 2 });
    second.release();

    // the grown room stays taken while the request lasts, even as its units leave the queue
    batches[0]!.finish();
    await tick();
    expect(batches[1]!.payloads).toEqual(['a1', 'a2']);
    expect(batcher.stats()).toMatchObject({ queued: 2, admitted: 4 });
    // queuing again within the grown room does not grow it further
    const more = batcher.submit('seg', ['a5', 'a6'], { admission: room });
    expect(batcher.stats()).toMatchObject({ queued: 4, admitted: 4 });
    expect(overloaded(3)).toBe('OVERLOADED');
    expect(overloaded(2)).toBeNull();
    for (let i = 1; i <= 3; i++) {
      batches[i]!.finish();
      await tick();
    }
    expect(await Promise.all([blocker, segments, more])).toEqual([['z!'], ['a1!', 'a2!', 'a3!', 'a4!'], ['a5!', 'a6!']]);
    expect(batcher.stats()).toMatchObject({ queued: 0, admitted: 4 });
    expect(overloaded(3)).toBe('OVERLOADED');

    // released: the whole queue is free again
    room.release();
    expect(batcher.stats()).toMatchObject({ queued: 0, admitted: 0 });
    expect(overloaded(6)).toBeNull();
    // work submitted with a released admission is plain work: it grows no room
    const late = batcher.submit('seg', ['late1', 'late2', 'late3', 'late4', 'late5'], { admission: room });
    expect(batcher.stats()).toMatchObject({ admitted: 0 });
    expect(room.units).toBe(4);
    expect(batcher.stats().queued).toBe(3); // late1 and late2 run
    await expect(batcher.submit('seg', ['w', 'x', 'y', 'z'], { admission: room })).rejects.toMatchObject({ code: 'OVERLOADED' });
    for (let i = 4; i <= 6; i++) {
      await tick();
      batches[i]!.finish();
    }
    expect(await late).toEqual(['late1!', 'late2!', 'late3!', 'late4!', 'late5!']);
  });
});
