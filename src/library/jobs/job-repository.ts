/**
 * The `library_jobs` and `library_job_items` tables: creating an import with its staged bytes,
 * coalescing re-tagging jobs, the worker's claim / renew / release / finish queries (`SKIP
 * LOCKED`, lease, claim token: the same protocol as description jobs), cancellation and the
 * job's items paged. Every query but the claim is scoped by the tenant.
 */
import type { LibraryItemState, LibraryJob, LibraryJobKind, Prisma, PrismaClient } from '../../generated/prisma/client.ts';
import { AppError, ErrorCode } from '../../core/errors.ts';
import { pageById, type Page } from '../../core/paging.ts';

export type { LibraryItemState, LibraryJob, LibraryJobKind };

/** The Prisma client or one of its transactions. */
export type Db = Prisma.TransactionClient | PrismaClient;

/** One image of a new import: bytes staged in the item, or a URL the worker fetches; or an error found while reading it. */
export type StagedImage =
  | { data: Uint8Array; url?: undefined; externalId: string | null; error?: undefined }
  | { url: string; data?: undefined; externalId: string | null; error?: undefined }
  | { error: { code: string; message: string }; externalId: string | null; data?: undefined; url?: undefined };

/** An item a worker holds: its lease lasts until renewed or released. */
export interface LibraryClaim {
  readonly id: string;
  readonly tenantId: string;
  readonly jobId: string;
  readonly kind: LibraryJobKind;
  readonly token: string;
  readonly attempts: number;
}

export interface LibraryJobItemRow {
  id: string;
  position: number;
  state: LibraryItemState;
  attempts: number;
  byteSize: number;
  externalId: string | null;
  url: string | null;
  imageId: string | null;
  duplicate: boolean;
  errorCode: string | null;
  error: string | null;
  updatedAt: Date;
}

/** What an import item needs once claimed. */
export interface ImportWork {
  vocabularyId: string;
  data: Uint8Array | null;
  url: string | null;
  externalId: string | null;
}

/** Rows per createMany of staged items (each carries its bytes). */
const ITEM_CHUNK = 64;

export class LibraryJobRepository {
  constructor(private readonly db: Db) {}

  /**
   * Queues an import: one item per image, its bytes staged in the row. Runs inside the caller's
   * transaction after `lockTenant`, so the tenant's pending bytes are counted and raised by one
   * caller at a time; over `maxPendingBytes` nothing is written (QUOTA_EXCEEDED).
   */
  async createImport(tenantId: string, vocabularyId: string, images: readonly StagedImage[], maxPendingBytes: number): Promise<LibraryJob> {
    const bytes = images.reduce((n, i) => n + (i.data?.length ?? 0), 0);
    if (maxPendingBytes > 0) {
      const pending = await this.pendingBytes(tenantId);
      if (pending + bytes > maxPendingBytes) {
        throw new AppError(ErrorCode.QUOTA_EXCEEDED, `the tenant's imports waiting to be processed would hold ${pending + bytes} bytes, over the ${maxPendingBytes}-byte limit; wait for running imports to finish`, {
          details: { quota: 'pendingImportBytes', limit: maxPendingBytes, pending, requested: bytes },
        });
      }
    }
    const failed = images.filter((i) => i.error).length;
    const done = failed === images.length;
    const job = await this.db.libraryJob.create({
      data: {
        tenantId,
        vocabularyId,
        kind: 'IMPORT',
        state: done ? 'FAILED' : 'QUEUED',
        total: images.length,
        failed,
        stagedBytes: bytes,
        ...(done ? { finishedAt: new Date(), error: `${failed} of ${images.length} images failed` } : {}),
      },
    });
    for (let at = 0; at < images.length; at += ITEM_CHUNK) {
      await this.db.libraryJobItem.createMany({
        data: images.slice(at, at + ITEM_CHUNK).map((image, k) => ({
          tenantId,
          jobId: job.id,
          position: at + k,
          externalId: image.externalId,
          ...(image.error
            ? { state: 'FAILED' as const, errorCode: image.error.code, error: image.error.message }
            : { url: image.url ?? null, data: image.data ? (image.data as Uint8Array<ArrayBuffer>) : null, byteSize: image.data?.length ?? 0 }),
        })),
      });
    }
    return job;
  }

  /** Serialises byte accounting of one tenant's imports until the transaction ends. */
  async lockTenant(tenantId: string): Promise<void> {
    await this.db.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('library-import:' || ${tenantId}::text))`;
  }

  /** Bytes staged in the tenant's unfinished imports. */
  async pendingBytes(tenantId: string): Promise<number> {
    const rows = await this.db.$queryRaw<{ n: bigint | null }[]>`
      SELECT sum(staged_bytes)::bigint AS n FROM library_jobs WHERE tenant_id = ${tenantId}::uuid AND state IN ('QUEUED', 'RUNNING')`;
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Asks for the vocabulary's stored images to be re-scored up to `revision`: raises the target
   * of its unfinished re-tagging job, or queues one (one item, re-run batch by batch). Returns
   * the job and whether it is new; no job when no stored result is older than `revision`.
   */
  async requestRetag(tenantId: string, vocabularyId: string, revision: number): Promise<{ job: LibraryJob | null; created: boolean }> {
    const stored = await this.db.$queryRaw<unknown[]>`
      SELECT 1 FROM image_results WHERE tenant_id = ${tenantId}::uuid AND vocabulary_id = ${vocabularyId}::uuid AND revision < ${revision}::int LIMIT 1`;
    if (stored.length === 0) return { job: null, created: false }; // nothing stored is behind: no job
    const raised = await this.db.$queryRaw<{ id: string }[]>`
      UPDATE library_jobs SET target_revision = GREATEST(target_revision, ${revision}::int), updated_at = now()
       WHERE active_retag = ${vocabularyId}::uuid AND tenant_id = ${tenantId}::uuid
      RETURNING id`;
    if (raised[0]) return { job: (await this.byId(tenantId, raised[0].id))!, created: false };
    const rows = await this.db.$queryRaw<{ id: string }[]>`
      INSERT INTO library_jobs (id, tenant_id, vocabulary_id, kind, state, active_retag, target_revision, total, updated_at)
      VALUES (gen_random_uuid(), ${tenantId}::uuid, ${vocabularyId}::uuid, 'RETAG', 'QUEUED', ${vocabularyId}::uuid, ${revision}::int, 1, now())
      ON CONFLICT (active_retag) DO UPDATE SET target_revision = GREATEST(library_jobs.target_revision, EXCLUDED.target_revision), updated_at = now()
      RETURNING id, (xmax = 0) AS created`;
    const row = rows[0] as { id: string; created: boolean };
    if (row.created) await this.db.libraryJobItem.create({ data: { tenantId, jobId: row.id, position: 0 } });
    return { job: (await this.byId(tenantId, row.id))!, created: row.created };
  }

  byId(tenantId: string, id: string): Promise<LibraryJob | null> {
    return this.db.libraryJob.findFirst({ where: { id, tenantId } });
  }

  /** The vocabulary's unfinished re-tagging job, or its last one. */
  latestRetag(tenantId: string, vocabularyId: string): Promise<LibraryJob | null> {
    return this.db.libraryJob.findFirst({ where: { tenantId, vocabularyId, kind: 'RETAG' }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
  }

  /** The vocabulary's stored results, and those older than its current revision (re-tagging's progress). */
  async resultsBehind(tenantId: string, vocabularyId: string): Promise<{ behind: number; total: number }> {
    const rows = await this.db.$queryRaw<{ behind: bigint; total: bigint }[]>`
      SELECT count(*) FILTER (WHERE r.revision < v.revision) AS behind, count(*) AS total
        FROM image_results r JOIN vocabularies v ON v.id = r.vocabulary_id AND v.tenant_id = r.tenant_id
       WHERE r.tenant_id = ${tenantId}::uuid AND r.vocabulary_id = ${vocabularyId}::uuid`;
    return { behind: Number(rows[0]?.behind ?? 0), total: Number(rows[0]?.total ?? 0) };
  }

  /** Items of a job by state. */
  async itemCounts(tenantId: string, jobId: string): Promise<Record<LibraryItemState, number>> {
    const groups = await this.db.libraryJobItem.groupBy({ by: ['state'], where: { tenantId, jobId }, _count: { _all: true } });
    const out: Record<LibraryItemState, number> = { PENDING: 0, RUNNING: 0, SUCCEEDED: 0, FAILED: 0, CANCELLED: 0 };
    for (const g of groups) out[g.state] = g._count._all;
    return out;
  }

  /** A job's items in request order. */
  items(tenantId: string, jobId: string, state: LibraryItemState | undefined, page: { first: number; after?: string | null }): Promise<Page<LibraryJobItemRow>> {
    const { db } = this;
    const where = { tenantId, jobId, ...(state ? { state } : {}) };
    const select = {
      id: true,
      position: true,
      state: true,
      attempts: true,
      byteSize: true,
      externalId: true,
      url: true,
      imageId: true,
      duplicate: true,
      errorCode: true,
      error: true,
      updatedAt: true,
    } as const;
    return pageById(page, {
      exists: (id) => db.libraryJobItem.findFirst({ where: { ...where, id }, select: { id: true } }),
      rows: (window) => db.libraryJobItem.findMany({ where, select, orderBy: [{ position: 'asc' }, { id: 'asc' }], ...window }),
      count: () => db.libraryJobItem.count({ where }),
    });
  }

  /**
   * Cancels an unfinished job: its waiting and running items end CANCELLED with their staged
   * bytes dropped (a running item's late result is refused by its claim token). NOT_FOUND
   * handling is the caller's.
   */
  async cancel(tenantId: string, jobId: string): Promise<LibraryJob> {
    const n = await this.db.$executeRaw`
      UPDATE library_job_items SET state = 'CANCELLED', claim_token = NULL, lease_expires_at = NULL, data = NULL, updated_at = now()
       WHERE tenant_id = ${tenantId}::uuid AND job_id = ${jobId}::uuid AND state IN ('PENDING', 'RUNNING')`;
    await this.db.$executeRaw`
      UPDATE library_jobs SET state = 'CANCELLED', cancelled = cancelled + ${n}::int, staged_bytes = 0, active_retag = NULL,
             finished_at = now(), updated_at = now()
       WHERE tenant_id = ${tenantId}::uuid AND id = ${jobId}::uuid AND state IN ('QUEUED', 'RUNNING')`;
    return (await this.byId(tenantId, jobId))!;
  }

  /**
   * Claims up to `limit` items that are due (PENDING past `run_after`) or whose lease ran out,
   * oldest first, skipping rows other workers are claiming. The one query across tenants: every
   * statement after it is scoped by the claimed row's tenant.
   */
  async claim(limit: number, leaseMs: number): Promise<LibraryClaim[]> {
    const rows = await this.db.$queryRaw<{ id: string; tenant_id: string; job_id: string; kind: LibraryJobKind; claim_token: string; attempts: number }[]>`
      WITH picked AS (
        SELECT i.id FROM library_job_items i
          JOIN library_jobs j ON j.id = i.job_id
         WHERE j.state IN ('QUEUED', 'RUNNING')
           AND ((i.state = 'PENDING' AND i.run_after <= now())
             OR (i.state = 'RUNNING' AND i.lease_expires_at < now()))
         ORDER BY i.run_after, i.position, i.id
         LIMIT ${limit}
         FOR UPDATE OF i SKIP LOCKED)
      UPDATE library_job_items i
         SET state = 'RUNNING', claim_token = gen_random_uuid(), attempts = i.attempts + 1,
             lease_expires_at = now() + make_interval(secs => ${leaseMs}::float8 / 1000), updated_at = now()
        FROM picked, library_jobs j WHERE i.id = picked.id AND j.id = i.job_id
      RETURNING i.id, i.tenant_id, i.job_id, j.kind, i.claim_token, i.attempts`;
    if (rows.length === 0) return [];
    const jobs = [...new Set(rows.map((r) => r.job_id))];
    await this.db.$executeRaw`
      UPDATE library_jobs SET state = 'RUNNING', updated_at = now() WHERE id = ANY(${jobs}::uuid[]) AND state = 'QUEUED'`;
    return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, jobId: r.job_id, kind: r.kind, token: r.claim_token, attempts: r.attempts }));
  }

  /** Extends the lease; false when the claim no longer holds. */
  async renew(claim: LibraryClaim, leaseMs: number): Promise<boolean> {
    const n = await this.db.$executeRaw`
      UPDATE library_job_items SET lease_expires_at = now() + make_interval(secs => ${leaseMs}::float8 / 1000), updated_at = now()
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'RUNNING'`;
    return n === 1;
  }

  /** An import item's input, if the claim still holds. */
  async importWork(claim: LibraryClaim): Promise<ImportWork | undefined> {
    const rows = await this.db.$queryRaw<{ vocabulary_id: string; data: Uint8Array | null; url: string | null; external_id: string | null }[]>`
      SELECT j.vocabulary_id, i.data, i.url, i.external_id
        FROM library_job_items i JOIN library_jobs j ON j.id = i.job_id AND j.tenant_id = i.tenant_id
       WHERE i.id = ${claim.id}::uuid AND i.tenant_id = ${claim.tenantId}::uuid AND i.claim_token = ${claim.token}::uuid AND i.state = 'RUNNING'`;
    const r = rows[0];
    return r && { vocabularyId: r.vocabulary_id, data: r.data, url: r.url, externalId: r.external_id };
  }

  /** A re-tagging item's vocabulary and target revision, if the claim still holds. */
  async retagWork(claim: LibraryClaim): Promise<{ vocabularyId: string; targetRevision: number } | undefined> {
    const rows = await this.db.$queryRaw<{ vocabulary_id: string; target_revision: number }[]>`
      SELECT j.vocabulary_id, j.target_revision
        FROM library_job_items i JOIN library_jobs j ON j.id = i.job_id AND j.tenant_id = i.tenant_id
       WHERE i.id = ${claim.id}::uuid AND i.tenant_id = ${claim.tenantId}::uuid AND i.claim_token = ${claim.token}::uuid AND i.state = 'RUNNING'`;
    const r = rows[0];
    return r && { vocabularyId: r.vocabulary_id, targetRevision: r.target_revision };
  }

  /**
   * Puts the item back to PENDING, claimable after `delayMs`; `refundAttempt` when the attempt
   * does not count (a clean stop, waiting for the tenant's image rate, a re-tagging batch done).
   * False when the claim no longer holds.
   */
  async release(claim: LibraryClaim, options: { error: { code: string; message: string } | null; refundAttempt: boolean; delayMs: number }): Promise<boolean> {
    const n = await this.db.$executeRaw`
      UPDATE library_job_items
         SET state = 'PENDING', claim_token = NULL, lease_expires_at = NULL,
             error_code = ${options.error?.code ?? null}, error = ${options.error?.message ?? null},
             attempts = attempts - ${options.refundAttempt ? 1 : 0}::int,
             run_after = now() + make_interval(secs => ${options.delayMs}::float8 / 1000), updated_at = now()
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'RUNNING'`;
    return n === 1;
  }

  /**
   * Ends an item SUCCEEDED or FAILED, drops its staged bytes and counts it in its job, which
   * finishes when nothing is left. False (nothing written) when the claim no longer holds. Run
   * it in the transaction that writes the item's result, so both happen or neither.
   */
  async finish(
    claim: LibraryClaim,
    outcome: { state: 'SUCCEEDED'; imageId?: string | null; duplicate?: boolean } | { state: 'FAILED'; error: { code: string; message: string } },
  ): Promise<boolean> {
    const ok = outcome.state === 'SUCCEEDED';
    const rows = await this.db.$queryRaw<{ byte_size: number }[]>`
      UPDATE library_job_items
         SET state = ${outcome.state}::"LibraryItemState", claim_token = NULL, lease_expires_at = NULL, data = NULL,
             image_id = ${ok ? (outcome.imageId ?? null) : null}::uuid, duplicate = ${ok ? (outcome.duplicate ?? false) : false},
             error_code = ${ok ? null : outcome.error.code}, error = ${ok ? null : outcome.error.message}, updated_at = now()
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'RUNNING'
      RETURNING byte_size`;
    if (!rows[0]) return false;
    const size = rows[0].byte_size;
    await this.db.$executeRaw`
      UPDATE library_jobs SET succeeded = succeeded + ${ok ? 1 : 0}::int, failed = failed + ${ok ? 0 : 1}::int,
             staged_bytes = GREATEST(0, staged_bytes - ${size}::bigint), updated_at = now()
       WHERE id = ${claim.jobId}::uuid AND tenant_id = ${claim.tenantId}::uuid`;
    await this.finishIfDone(claim.tenantId, claim.jobId);
    return true;
  }

  /**
   * A re-tagging job whose images are all at `revision`: finishes, unless an edit raised its
   * target meanwhile (then its item goes back to work at once). False when the claim is gone.
   */
  async finishRetag(claim: LibraryClaim, revision: number): Promise<'finished' | 'again' | 'lost'> {
    const done = await this.db.$executeRaw`
      UPDATE library_jobs SET state = 'SUCCEEDED', succeeded = 1, active_retag = NULL, finished_at = now(), updated_at = now()
       WHERE id = ${claim.jobId}::uuid AND tenant_id = ${claim.tenantId}::uuid AND target_revision <= ${revision}::int AND state = 'RUNNING'`;
    if (done === 1) {
      const n = await this.db.$executeRaw`
        UPDATE library_job_items SET state = 'SUCCEEDED', claim_token = NULL, lease_expires_at = NULL, error_code = NULL, error = NULL, updated_at = now()
         WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'RUNNING'`;
      if (n === 1) return 'finished';
      throw new LostLibraryClaim();
    }
    return (await this.release(claim, { error: null, refundAttempt: true, delayMs: 0 })) ? 'again' : 'lost';
  }

  /** Fails a re-tagging job for good (its one item failed): the next edit queues a new one. */
  async failRetag(claim: LibraryClaim, error: { code: string; message: string }): Promise<boolean> {
    const n = await this.db.$executeRaw`
      UPDATE library_job_items SET state = 'FAILED', claim_token = NULL, lease_expires_at = NULL, error_code = ${error.code}, error = ${error.message}, updated_at = now()
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'RUNNING'`;
    if (n !== 1) return false;
    await this.db.$executeRaw`
      UPDATE library_jobs SET state = 'FAILED', failed = 1, active_retag = NULL, error = ${`${error.code}: ${error.message}`}, finished_at = now(), updated_at = now()
       WHERE id = ${claim.jobId}::uuid AND tenant_id = ${claim.tenantId}::uuid`;
    return true;
  }

  /** Finishes an import whose items are all done: SUCCEEDED when none failed, else FAILED with a count. */
  private async finishIfDone(tenantId: string, jobId: string): Promise<void> {
    await this.db.$executeRaw`
      UPDATE library_jobs
         SET state = (CASE WHEN failed = 0 THEN 'SUCCEEDED' ELSE 'FAILED' END)::"JobState",
             error = CASE WHEN failed = 0 THEN NULL ELSE failed || ' of ' || total || ' images failed' END,
             staged_bytes = 0, finished_at = now(), updated_at = now()
       WHERE id = ${jobId}::uuid AND tenant_id = ${tenantId}::uuid AND kind = 'IMPORT' AND state IN ('QUEUED', 'RUNNING')
         AND succeeded + failed + cancelled >= total`;
  }

  /**
   * Vocabularies with stored results behind their revision and no unfinished re-tagging (an edit
   * whose process died before queuing it): checked when a worker starts, at most `limit`.
   */
  async behindWithoutJob(limit: number): Promise<{ tenantId: string; vocabularyId: string; revision: number }[]> {
    return this.db.$queryRaw<{ tenantId: string; vocabularyId: string; revision: number }[]>`
      SELECT v.tenant_id AS "tenantId", v.id AS "vocabularyId", v.revision
        FROM vocabularies v
       WHERE EXISTS (SELECT 1 FROM image_results r WHERE r.tenant_id = v.tenant_id AND r.vocabulary_id = v.id AND r.revision < v.revision)
         AND NOT EXISTS (SELECT 1 FROM library_jobs j WHERE j.active_retag = v.id)
       LIMIT ${limit}`;
  }

  /** Items of every tenant by state: the operators' view (metrics), never a tenant's. */
  async itemsByState(): Promise<Record<LibraryItemState, number>> {
    const groups = await this.db.libraryJobItem.groupBy({ by: ['state'], _count: { _all: true } });
    const out: Record<LibraryItemState, number> = { PENDING: 0, RUNNING: 0, SUCCEEDED: 0, FAILED: 0, CANCELLED: 0 };
    for (const g of groups) out[g.state] = g._count._all;
    return out;
  }
}

/** The claim no longer holds: another worker took the item, or its job was cancelled. */
export class LostLibraryClaim extends Error {}
