/**
 * Runs library jobs on any replica: import items (one image each) and re-tagging steps (one
 * batch of a vocabulary's stale stored images each), claimed from `library_job_items` under a
 * lease by the shared `LeasedWorker` loop. A dead replica's items are claimed again when their
 * lease runs out; every write presents the claim token, so a late worker writes nothing.
 */
import type { PrismaClient } from '../../db/client.ts';
import { translateDbError } from '../../db/client.ts';
import { AppError, ErrorCode, isAppError } from '../../core/errors.ts';
import { LeasedWorker, type LeasedWorkerOptions } from '../../core/leased-worker.ts';
import type { Logger } from '../../core/log.ts';
import { LibraryJobRepository, LostLibraryClaim, type LibraryClaim } from './job-repository.ts';

/**
 * What an import item does with its image: what `tagImage` with `store: true` does (the tenant's
 * image rate and daily quota, the URL fetched, the image stored once by SHA-256 with its result
 * for the vocabulary's current revision), wired by the composition root.
 */
export interface ImageImporter {
  importImage(
    tenantId: string,
    vocabularyId: string,
    image: { readonly bytes: Uint8Array } | { readonly url: string },
    options: { externalId: string | null; signal: AbortSignal },
  ): Promise<{ imageId: string; duplicate: boolean }>;
}

/** One step of re-tagging: re-score up to `batch` stored images whose results are older than the vocabulary. */
export interface Retagger {
  retagStep(tenantId: string, vocabularyId: string, batch: number, signal: AbortSignal): Promise<{ revision: number; remaining: boolean }>;
}

export interface LibraryWorkerOptions extends LeasedWorkerOptions {
  readonly leaseMs: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly retagBatch: number;
}

export interface LibraryWorkerDeps {
  prisma: PrismaClient;
  importer: ImageImporter;
  retagger: Retagger;
  log: Logger;
}

type Failure = { code: string; message: string };

export class LibraryJobWorker {
  private readonly loop: LeasedWorker<LibraryClaim>;
  private readonly repo: LibraryJobRepository;
  private readonly counters = { imported: 0, failed: 0, retried: 0, waited: 0, retagSteps: 0, lost: 0 };

  constructor(
    private readonly deps: LibraryWorkerDeps,
    private readonly options: LibraryWorkerOptions,
  ) {
    this.repo = new LibraryJobRepository(deps.prisma);
    const { repo } = this;
    this.loop = new LeasedWorker<LibraryClaim>(
      'library worker',
      {
        claim: (limit) => repo.claim(limit, options.leaseMs).catch(translateDbError),
        renew: (claim) => repo.renew(claim, options.leaseMs).catch(translateDbError),
        process: (claim, signals) => (claim.kind === 'IMPORT' ? this.importItem(claim, signals.any) : this.retagItem(claim, signals.any)),
      },
      options,
      deps.log,
    );
  }

  stats() {
    const { polls, claimed, active, running } = this.loop.stats();
    return { polls, claimed, ...this.counters, active, running };
  }

  start(): void {
    this.loop.start();
  }

  nudge(): void {
    this.loop.nudge();
  }

  /** Stops claiming and hands the items in flight back (attempt not counted) for another worker. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async importItem(claim: LibraryClaim, signal: AbortSignal): Promise<void> {
    const { deps } = this;
    try {
      const work = await this.repo.importWork(claim).catch(translateDbError);
      if (!work) throw new LostLibraryClaim();
      const image = work.data ? { bytes: work.data } : work.url ? { url: work.url } : undefined;
      if (!image) throw new AppError(ErrorCode.INTERNAL_SERVER_ERROR, 'an import item without bytes or URL');
      const stored = await deps.importer.importImage(claim.tenantId, work.vocabularyId, image, { externalId: work.externalId, signal });
      if (!(await this.repo.finish(claim, { state: 'SUCCEEDED', imageId: stored.imageId, duplicate: stored.duplicate }).catch(translateDbError))) throw new LostLibraryClaim();
      this.counters.imported++;
    } catch (e) {
      await this.failed(claim, e, true);
    }
  }

  private async retagItem(claim: LibraryClaim, signal: AbortSignal): Promise<void> {
    try {
      const work = await this.repo.retagWork(claim).catch(translateDbError);
      if (!work) throw new LostLibraryClaim();
      const step = await this.deps.retagger.retagStep(claim.tenantId, work.vocabularyId, this.options.retagBatch, signal);
      this.counters.retagSteps++;
      // More to do: the item goes back to the queue at once, so other jobs take turns with it
      // and a crash loses at most one (idempotent) batch.
      const outcome = step.remaining
        ? (await this.repo.release(claim, { error: null, refundAttempt: true, delayMs: 0 }).catch(translateDbError))
          ? 'again'
          : 'lost'
        : await this.deps.prisma.$transaction((tx) => new LibraryJobRepository(tx).finishRetag(claim, step.revision)).catch(translateDbError);
      if (outcome === 'lost') throw new LostLibraryClaim();
    } catch (e) {
      await this.failed(claim, e, false);
    }
  }

  /**
   * Waits (the tenant's image rate or daily quota: the item is due again when the window
   * renews, attempt not counted), retries (a busy engine or database, with back-off, up to
   * `maxAttempts`), hands back (stopping) or fails the item with its code.
   */
  private async failed(claim: LibraryClaim, e: unknown, isImport: boolean): Promise<void> {
    const { log } = this.deps;
    if (e instanceof LostLibraryClaim || (isAppError(e) && e.code === ErrorCode.NOT_FOUND && !isImport)) {
      this.counters.lost++;
      return;
    }
    const stopping = !this.loop.isRunning && isCancel(e);
    const failure = failureOf(e);
    if (failure.code === ErrorCode.INTERNAL_SERVER_ERROR) log.error({ err: e, item: claim.id }, 'library item met an unexpected error');
    const waitMs = isAppError(e) && typeof e.details.retryAfterMs === 'number' ? e.details.retryAfterMs : undefined;
    const waits = isAppError(e) && (e.code === ErrorCode.RATE_LIMITED || e.code === ErrorCode.QUOTA_EXCEEDED) && waitMs !== undefined;
    const retryable = stopping || waits || isRetryable(e);
    if (retryable && (stopping || waits || claim.attempts < this.options.maxAttempts)) {
      const backoff = this.options.retryBaseMs * 2 ** Math.max(0, claim.attempts - 1);
      const delay = stopping ? 0 : waits ? waitMs! : Math.min(this.options.retryMaxMs, Math.max(waitMs ?? 0, backoff));
      const released = await this.repo
        .release(claim, { error: stopping ? null : failure, refundAttempt: stopping || waits, delayMs: delay })
        .catch((err) => {
          log.warn({ err, item: claim.id }, 'could not hand a library item back');
          return true; // its lease runs out and another worker takes it
        });
      if (!released) this.counters.lost++;
      else if (waits) this.counters.waited++;
      else if (!stopping) this.counters.retried++;
      return;
    }
    const recorded = await (isImport
      ? this.deps.prisma.$transaction((tx) => new LibraryJobRepository(tx).finish(claim, { state: 'FAILED', error: failure }))
      : this.deps.prisma.$transaction((tx) => new LibraryJobRepository(tx).failRetag(claim, failure))
    ).catch((err: unknown) => {
      log.warn({ err, item: claim.id }, 'could not record a failed library item');
      return false;
    });
    if (recorded) {
      this.counters.failed++;
      log.info({ item: claim.id, job: claim.jobId, code: failure.code }, 'library item failed');
    } else this.counters.lost++;
  }
}

function failureOf(e: unknown): Failure {
  if (isAppError(e)) return { code: e.code, message: e.message };
  return { code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'an unexpected error (see the server log)' };
}

function isCancel(e: unknown): boolean {
  return (isAppError(e) && e.code === ErrorCode.CANCELLED) || (e instanceof Error && e.name === 'AbortError');
}

/** A busy engine or database passes; a bad image, a quota without an end, a conflict do not. */
function isRetryable(e: unknown): boolean {
  if (!isAppError(e)) return false;
  switch (e.code) {
    case ErrorCode.OVERLOADED:
    case ErrorCode.MODEL_UNAVAILABLE:
    case ErrorCode.DATABASE_UNAVAILABLE:
    case ErrorCode.CANCELLED:
      return true;
    default:
      return false;
  }
}
