import { translateDbError, type PrismaClient } from '../db/client.ts';
import { chunks } from '../core/chunks.ts';
import { ErrorCode, isAppError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';

export interface TaggingRunRecord {
  tenantId: string;
  vocabularyId: string;
  revision: number;
  imageCount: number;
  failedCount: number;
  /** Images scored × the tags of the revision. */
  tagsScored: number;
  /** Images the request added to the tenant's library (duplicates not counted). */
  storedCount?: number;
  /** Failed images by error code. */
  errorCodes?: Record<string, number> | undefined;
  durationMs: number;
}

export interface UsageRecorderOptions {
  /** Longest a record waits before it is written. */
  flushMs: number;
  /** Records that start a write at once. */
  maxBuffered: number;
  /** Wait before records are written again after the database was unavailable. */
  retryMs: number;
  /** Records kept for a retry while the database is unavailable; beyond, the oldest are dropped (logged). */
  maxKept: number;
}

const DEFAULTS: UsageRecorderOptions = { flushMs: 1_000, maxBuffered: 500, retryMs: 5_000, maxKept: 50_000 };
/** Rows per insert (9 bind parameters each, far below PostgreSQL's 65,535). */
const ROWS_PER_INSERT = 1_000;

/**
 * Records tagging runs for usage accounting in batches: one insert per request would put a
 * write on every tagging call's path and, on the single-connection embedded database, queue
 * behind it. Records wait at most `flushMs`; while the database is unavailable they are kept
 * (at most `maxKept`) and written again every `retryMs`; `stop()` writes what is left. A crash
 * loses at most that much accounting, never a tagging result.
 */
export class UsageRecorder {
  private buffer: TaggingRunRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private stopping = false;
  /** The last write found the database unavailable; the next one waits for the retry timer. */
  private retrying = false;
  private readonly options: UsageRecorderOptions;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly log: Logger,
    options: Partial<UsageRecorderOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  record(run: TaggingRunRecord): void {
    this.buffer.push(run);
    // while the database is unavailable, only the retry timer writes
    if (this.buffer.length >= this.options.maxBuffered && !this.retrying) void this.flush();
    else this.schedule(this.options.flushMs);
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.buffer;
    this.buffer = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(() => this.write(batch));
    return this.flushing;
  }

  /** Writes what is left, once: records the database does not take now are lost (logged). */
  stop(): Promise<void> {
    this.stopping = true;
    return this.flush();
  }

  private schedule(ms: number): void {
    this.timer ??= setTimeout(() => void this.flush(), ms).unref();
  }

  private async write(batch: TaggingRunRecord[]): Promise<void> {
    let written = 0;
    try {
      for (const part of chunks(batch, ROWS_PER_INSERT)) {
        await this.prisma.taggingRun
          .createMany({ data: part.map((r) => ({ ...r, durationMs: Math.round(r.durationMs) })) })
          .catch(translateDbError);
        written += part.length;
      }
      this.retrying = false;
    } catch (err) {
      const rest = batch.slice(written);
      if (this.stopping || !isAppError(err) || err.code !== ErrorCode.DATABASE_UNAVAILABLE) {
        this.log.warn({ err, runs: rest.length }, 'could not record tagging runs');
        return;
      }
      // Kept, oldest first, for the next try; beyond the bound the oldest are dropped.
      this.buffer = [...rest, ...this.buffer];
      const excess = this.buffer.length - this.options.maxKept;
      if (excess > 0) {
        this.buffer.splice(0, excess);
        this.log.warn({ dropped: excess }, 'the database stayed unavailable: dropped the oldest tagging run records');
      }
      this.log.debug({ runs: rest.length }, 'tagging runs kept until the database answers again');
      this.retrying = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      this.schedule(this.options.retryMs);
    }
  }
}
