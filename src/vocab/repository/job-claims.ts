/**
 * The description worker's queue operations on `description_job_items`: claim with a lease,
 * renew it, hand an item back, and finish it. Every write after the claim presents the claim
 * token, so a worker whose lease ran out (and whose item another worker took) writes nothing.
 */
import type { Db } from './transactions.ts';
import type { LlmUsage } from '../generation/generators.ts';

/** An item a worker holds: its lease lasts until renewed or released. */
export interface Claim {
  id: string;
  tenantId: string;
  jobId: string;
  tagId: string;
  token: string;
  attempts: number;
}

/** What a claimed item is about. */
export interface ClaimedWork {
  tagName: string;
  vocabularyId: string;
  generator: 'llm' | 'template';
  /** The LLM model the job asked for (null: templates, or an LLM job that named none). */
  model: string | null;
  descriptionsPerTag: number;
}

/** What a worker can generate: template jobs always, LLM jobs of its model when it has one. */
export interface WorkerAbilities {
  llmModel: string | null;
}

export class JobClaimRepository {
  constructor(private readonly db: Db) {}

  /**
   * Claims up to `limit` items that are due (PENDING and past `run_after`) or whose lease ran
   * out (their worker died), oldest first, skipping rows other workers are claiming, of jobs
   * this worker can run: a replica without an LLM, or with another model, leaves an LLM job's
   * items to the replicas that have its model (a job that names no model: any LLM). This is
   * the one query across tenants: the worker serves them all, and every statement after it is
   * scoped by the claimed row's tenant.
   */
  async claim(limit: number, leaseMs: number, can: WorkerAbilities): Promise<Claim[]> {
    const rows = await this.db.$queryRaw<{ id: string; tenant_id: string; job_id: string; tag_id: string; claim_token: string; attempts: number }[]>`
      WITH picked AS (
        SELECT i.id FROM description_job_items i
          JOIN description_jobs j ON j.id = i.job_id
         WHERE j.state IN ('QUEUED', 'RUNNING')
           AND (j.generator = 'template'
             OR (j.generator = 'llm' AND ${can.llmModel}::text IS NOT NULL AND (j.model IS NULL OR j.model = ${can.llmModel}::text)))
           AND ((i.state = 'PENDING' AND i.run_after <= now())
             OR (i.state = 'GENERATING' AND i.lease_expires_at < now()))
         ORDER BY i.run_after, i.id
         LIMIT ${limit}
         FOR UPDATE OF i SKIP LOCKED)
      UPDATE description_job_items i
         SET state = 'GENERATING', claim_token = gen_random_uuid(), attempts = i.attempts + 1,
             lease_expires_at = now() + make_interval(secs => ${leaseMs}::float8 / 1000), updated_at = now()
        FROM picked WHERE i.id = picked.id
      RETURNING i.id, i.tenant_id, i.job_id, i.tag_id, i.claim_token, i.attempts`;
    if (rows.length === 0) return [];
    const jobs = [...new Map(rows.map((r) => [r.job_id, r.tenant_id])).entries()];
    await this.db.$executeRaw`
      UPDATE description_jobs j SET state = 'RUNNING', updated_at = now()
        FROM unnest(${jobs.map(([id]) => id)}::uuid[], ${jobs.map(([, tenant]) => tenant)}::uuid[]) AS c(id, tenant_id)
       WHERE j.id = c.id AND j.tenant_id = c.tenant_id AND j.state = 'QUEUED'`;
    await this.db.$executeRaw`
      UPDATE tags t SET description_state = 'GENERATING'
        FROM unnest(${rows.map((r) => r.tag_id)}::uuid[], ${rows.map((r) => r.tenant_id)}::uuid[]) AS c(id, tenant_id)
       WHERE t.id = c.id AND t.tenant_id = c.tenant_id AND t.description_state = 'PENDING'`;
    return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, jobId: r.job_id, tagId: r.tag_id, token: r.claim_token, attempts: r.attempts }));
  }

  /** The tag and job of a claimed item; undefined when the claim no longer holds. */
  async work(claim: Claim): Promise<ClaimedWork | undefined> {
    const rows = await this.db.$queryRaw<{ name: string; vocabulary_id: string; generator: string; model: string | null; per_tag: number }[]>`
      SELECT t.name, t.vocabulary_id, j.generator, j.model, j.descriptions_per_tag AS per_tag
        FROM description_job_items i
        JOIN tags t ON t.id = i.tag_id AND t.tenant_id = i.tenant_id
        JOIN description_jobs j ON j.id = i.job_id AND j.tenant_id = i.tenant_id
       WHERE i.id = ${claim.id}::uuid AND i.tenant_id = ${claim.tenantId}::uuid AND i.claim_token = ${claim.token}::uuid AND i.state = 'GENERATING'`;
    const r = rows[0];
    return r && { tagName: r.name, vocabularyId: r.vocabulary_id, generator: r.generator === 'llm' ? 'llm' : 'template', model: r.model, descriptionsPerTag: r.per_tag };
  }

  /** Extends the lease; false when the claim no longer holds. */
  async renew(claim: Claim, leaseMs: number): Promise<boolean> {
    const n = await this.db.$executeRaw`
      UPDATE description_job_items SET lease_expires_at = now() + make_interval(secs => ${leaseMs}::float8 / 1000), updated_at = now()
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'GENERATING'`;
    return n === 1;
  }

  /**
   * Puts the item back to PENDING, claimable after `delayMs`; `refundAttempt` when the attempt
   * does not count (a clean stop). False when the claim no longer holds.
   */
  async release(claim: Claim, options: { error: string | null; refundAttempt: boolean; delayMs: number; llm?: LlmUsage | undefined }): Promise<boolean> {
    const { llm } = options;
    const n = await this.db.$executeRaw`
      UPDATE description_job_items
         SET state = 'PENDING', claim_token = NULL, lease_expires_at = NULL, error = ${options.error},
             llm_calls = llm_calls + ${llm?.calls ?? 0}::int,
             llm_tokens = CASE WHEN ${llm?.tokens ?? null}::int IS NULL THEN llm_tokens ELSE coalesce(llm_tokens, 0) + ${llm?.tokens ?? null}::int END,
             attempts = attempts - ${options.refundAttempt ? 1 : 0}::int, run_after = now() + make_interval(secs => ${options.delayMs}::float8 / 1000), updated_at = now()
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'GENERATING'`;
    return n === 1;
  }

  /**
   * Ends the item READY or FAILED; false when the claim no longer holds (nothing is written).
   * The attempt's LLM usage is added to what earlier attempts used.
   */
  async finish(claim: Claim, state: 'READY' | 'FAILED', error: string | null = null, llm?: LlmUsage): Promise<boolean> {
    const n = await this.db.$executeRaw`
      UPDATE description_job_items
         SET state = ${state}::"DescriptionState", claim_token = NULL, lease_expires_at = NULL, error = ${error}, updated_at = now(),
             llm_calls = llm_calls + ${llm?.calls ?? 0}::int,
             llm_tokens = CASE WHEN ${llm?.tokens ?? null}::int IS NULL THEN llm_tokens ELSE coalesce(llm_tokens, 0) + ${llm?.tokens ?? null}::int END
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid AND claim_token = ${claim.token}::uuid AND state = 'GENERATING'`;
    return n === 1;
  }

  /** The tag was renamed while generating: the item is due again at once, this attempt not counted. */
  async requeue(claim: Claim): Promise<void> {
    await this.db.$executeRaw`
      UPDATE description_job_items SET state = 'PENDING', run_after = now(), attempts = attempts - 1, updated_at = now()
       WHERE id = ${claim.id}::uuid AND tenant_id = ${claim.tenantId}::uuid`;
  }
}
