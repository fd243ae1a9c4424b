import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/core/log.ts';
import type { PrismaClient } from '../../src/db/client.ts';
import { UsageRecorder, type TaggingRunRecord } from '../../src/tagging/usage-recorder.ts';

const run = (n: number): TaggingRunRecord => ({ tenantId: 't', vocabularyId: `v${n}`, revision: 1, imageCount: 1, failedCount: 0, tagsScored: 0, durationMs: n + 0.4 });

/** A table that fails its writes while `down` says so, the way the driver fails them. */
function table(down: () => Error | undefined) {
  const rows: { vocabularyId: string; durationMs: number }[] = [];
  const createMany = vi.fn(async ({ data }: { data: { vocabularyId: string; durationMs: number }[] }) => {
    const error = down();
    if (error) throw error;
    rows.push(...data);
    return { count: data.length };
  });
  return { rows, createMany, prisma: { taggingRun: { createMany } } as unknown as PrismaClient };
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
};

describe('usage records', () => {
  it('keeps records while the database is unavailable and writes them once it answers, without a write per request meanwhile', async () => {
    let unavailable = true;
    const t = table(() => (unavailable ? new Error('Connection terminated unexpectedly') : undefined));
    const recorder = new UsageRecorder(t.prisma, createLogger('silent'), { flushMs: 5, maxBuffered: 3, retryMs: 50 });
    for (let i = 0; i < 3; i++) recorder.record(run(i));
    await until(() => t.createMany.mock.calls.length === 1);
    for (let i = 3; i < 10; i++) recorder.record(run(i)); // over maxBuffered: still only the retry timer writes
    expect(t.createMany).toHaveBeenCalledTimes(1);
    unavailable = false;
    await until(() => t.rows.length === 10);
    expect(t.rows.map((r) => r.vocabularyId)).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
    expect(t.rows[0]!.durationMs).toBe(0);
    await recorder.stop();
  });

  it('drops a batch the database refuses for another reason, and what it cannot write when stopping', async () => {
    let error: Error | undefined = Object.assign(new Error('Foreign key constraint violated'), { code: 'P2003' });
    const t = table(() => error);
    const recorder = new UsageRecorder(t.prisma, createLogger('silent'), { flushMs: 5, maxBuffered: 100, retryMs: 10 });
    recorder.record(run(1));
    await recorder.flush();
    error = new Error('Connection terminated unexpectedly');
    recorder.record(run(2));
    await recorder.stop();
    error = undefined;
    await new Promise((r) => setTimeout(r, 50));
    expect(t.createMany).toHaveBeenCalledTimes(2);
    expect(t.rows).toEqual([]);
  });

  it('keeps at most maxKept records while the database stays away, the newest', async () => {
    let unavailable = true;
    const t = table(() => (unavailable ? new Error('Query read timeout') : undefined));
    const recorder = new UsageRecorder(t.prisma, createLogger('silent'), { flushMs: 5, maxBuffered: 1_000, retryMs: 30, maxKept: 4 });
    for (let i = 0; i < 6; i++) recorder.record(run(i));
    await until(() => t.createMany.mock.calls.length === 1);
    unavailable = false;
    await until(() => t.rows.length > 0);
    expect(t.rows.map((r) => r.vocabularyId)).toEqual(['v2', 'v3', 'v4', 'v5']);
    await recorder.stop();
  });
});
