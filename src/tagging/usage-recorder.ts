import type { PrismaClient } from '../db/client.ts';
import type { Logger } from '../core/log.ts';

export interface TaggingRunRecord {
  tenantId: string;
  vocabularyId: string;
  revision: number;
  imageCount: number;
  failedCount: number;
  durationMs: number;
}

/**
 * Records tagging runs for usage accounting in batches: one insert per request would put a
 * write on every tagging call's path and, on the single-connection embedded database, queue
 * behind it. Records wait at most `flushMs`; `stop()` writes what is left. A crash loses at
 * most that much accounting, never a tagging result.
 */
export class UsageRecorder {
  private buffer: TaggingRunRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly log: Logger,
    private readonly options: { flushMs: number; maxBuffered: number } = { flushMs: 1_000, maxBuffered: 500 },
  ) {}

  record(run: TaggingRunRecord): void {
    this.buffer.push(run);
    if (this.buffer.length >= this.options.maxBuffered) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.options.flushMs).unref();
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.buffer;
    this.buffer = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(() =>
      this.prisma.taggingRun
        .createMany({ data: batch.map((r) => ({ ...r, durationMs: Math.round(r.durationMs) })) })
        .then(
          () => {},
          (err: unknown) => this.log.warn({ err, runs: batch.length }, 'could not record tagging runs'),
        ),
    );
    return this.flushing;
  }

  stop(): Promise<void> {
    return this.flush();
  }
}
