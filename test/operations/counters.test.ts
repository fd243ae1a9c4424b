import { afterEach, describe, expect, it, vi } from 'vitest';
import { Counters } from '../../src/limits/index.ts';

// The counters' windows and buckets in this process's memory, on a clock the test sets.
describe('counters in memory', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('counts a daily window per UTC day: the count starts again at midnight', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-05T23:59:58.000Z'));
    const counters = new Counters({ kind: 'memory' });
    const day = { name: 'test-day', durationS: 86_400, utcDay: true };
    expect(await counters.take(day, 2, 'tenant-a', 2)).toEqual({ ok: true });
    const refused = await counters.take(day, 2, 'tenant-a', 1);
    expect(refused).toEqual({ ok: false, retryAfterMs: 2_000 });
    // another key has its own count
    expect(await counters.take(day, 2, 'tenant-b', 1)).toEqual({ ok: true });
    vi.setSystemTime(new Date('2026-12-06T00:00:00.500Z'));
    expect(await counters.take(day, 2, 'tenant-a', 2)).toEqual({ ok: true });
    expect((await counters.take(day, 2, 'tenant-a', 1)).ok).toBe(false);
  });

  it('keeps a rolling window where no calendar is asked for', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-05T23:59:58.000Z'));
    const counters = new Counters({ kind: 'memory' });
    const minute = { name: 'test-minute', durationS: 60 };
    expect(await counters.take(minute, 1, 'k', 1)).toEqual({ ok: true });
    vi.setSystemTime(new Date('2026-12-06T00:00:00.500Z'));
    const refused = await counters.take(minute, 1, 'k', 1);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.retryAfterMs).toBe(57_500);
  });

  it('admits requests from a bucket: the allowance at once, then one per interval', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = new Date('2026-12-05T12:00:00.000Z').getTime();
    vi.setSystemTime(t0);
    const counters = new Counters({ kind: 'memory' });
    const burst = [];
    for (let i = 0; i < 5; i++) burst.push(await counters.takeRequest('k', 4));
    expect(burst.map((r) => r.ok)).toEqual([true, true, true, true, false]);
    expect(burst[4]).toEqual({ ok: false, retryAfterMs: 250 });
    // refused from memory until then, admitted one at a time after
    vi.setSystemTime(t0 + 249);
    expect((await counters.takeRequest('k', 4)).ok).toBe(false);
    vi.setSystemTime(t0 + 250);
    expect((await counters.takeRequest('k', 4)).ok).toBe(true);
    expect((await counters.takeRequest('k', 4)).ok).toBe(false);
    vi.setSystemTime(t0 + 500);
    expect((await counters.takeRequest('k', 4)).ok).toBe(true);
    // a second of quiet fills the bucket again, but no further
    vi.setSystemTime(t0 + 5_000);
    const refill = [];
    for (let i = 0; i < 5; i++) refill.push((await counters.takeRequest('k', 4)).ok);
    expect(refill).toEqual([true, true, true, true, false]);
  });
});
