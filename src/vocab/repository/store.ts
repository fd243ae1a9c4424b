/**
 * Database helpers shared by the vocabulary services. Every edit of a vocabulary runs in one
 * transaction that first locks the vocabulary row (`lockVocabulary`): edits of one vocabulary
 * serialise, each commits exactly one new revision, and the tags it changed carry that
 * revision, which is what incremental label-bank compiles look for.
 */
import { translateDbError, type PrismaClient } from '../../db/client.ts';
import type { Prisma } from '../../generated/prisma/client.ts';
import { AppError, notFound } from '../../core/errors.ts';
import { isUuid } from '../use-cases/names.ts';

export type Tx = Prisma.TransactionClient;

/** Interactive transactions wait for a connection (the embedded database has one) and may be long (seeding). */
const TX_OPTIONS = { maxWait: 30_000, timeout: 120_000 } as const;

export async function inTransaction<T>(prisma: PrismaClient, fn: (tx: Tx) => Promise<T>): Promise<T> {
  try {
    return await prisma.$transaction(fn, TX_OPTIONS);
  } catch (e) {
    if (e instanceof AppError) throw e;
    return translateDbError(e);
  }
}

export async function run<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (e) {
    if (e instanceof AppError) throw e;
    return translateDbError(e);
  }
}

export function checkTenant(tenantId: string): void {
  // Tenant ids come from authentication; a malformed one can own nothing.
  if (!isUuid(tenantId)) throw notFound('vocabulary');
}

/**
 * Locks the tenant's vocabulary row for the rest of the transaction and returns its revision.
 * Another tenant's vocabulary, a missing one and a malformed id all answer NOT_FOUND.
 */
export async function lockVocabulary(tx: Tx, tenantId: string, vocabularyId: string): Promise<number> {
  if (!isUuid(vocabularyId) || !isUuid(tenantId)) throw notFound('vocabulary');
  const rows = await tx.$queryRaw<{ revision: number }[]>`
    SELECT revision FROM vocabularies WHERE id = ${vocabularyId}::uuid AND tenant_id = ${tenantId}::uuid FOR UPDATE`;
  if (rows.length === 0) throw notFound('vocabulary');
  return rows[0]!.revision;
}

export async function setRevision(tx: Tx, vocabularyId: string, revision: number): Promise<void> {
  await tx.vocabulary.update({ where: { id: vocabularyId }, data: { revision } });
}

/**
 * Finishes jobs whose items are all done: SUCCEEDED when none failed, else FAILED with a count.
 */
export async function finishJobsIfDone(tx: Tx, jobIds: readonly string[]): Promise<void> {
  if (jobIds.length === 0) return;
  await tx.$executeRaw`
    UPDATE description_jobs
       SET state = (CASE WHEN failed = 0 THEN 'SUCCEEDED' ELSE 'FAILED' END)::"JobState",
           error = CASE WHEN failed = 0 THEN error ELSE failed || ' of ' || total || ' tags failed' END,
           finished_at = now(), updated_at = now()
     WHERE id = ANY(${[...jobIds]}::uuid[]) AND state IN ('QUEUED', 'RUNNING') AND succeeded + failed >= total`;
}

/**
 * Takes tags out of unfinished jobs (they were removed or given manual descriptions): their
 * pending items are deleted and the jobs' totals shrink, so the jobs still finish.
 */
export async function detachFromJobs(tx: Tx, tenantId: string, tagIds: readonly string[]): Promise<void> {
  if (tagIds.length === 0) return;
  const rows = await tx.$queryRaw<{ job_id: string }[]>`
    DELETE FROM description_job_items i
     USING description_jobs j
     WHERE i.job_id = j.id AND i.tenant_id = ${tenantId}::uuid AND i.tag_id = ANY(${[...tagIds]}::uuid[])
       AND i.state IN ('PENDING', 'GENERATING') AND j.state IN ('QUEUED', 'RUNNING')
    RETURNING i.job_id`;
  const perJob = new Map<string, number>();
  for (const r of rows) perJob.set(r.job_id, (perJob.get(r.job_id) ?? 0) + 1);
  for (const [jobId, n] of perJob) {
    await tx.$executeRaw`UPDATE description_jobs SET total = total - ${n}, updated_at = now() WHERE id = ${jobId}::uuid`;
  }
  await finishJobsIfDone(tx, [...perJob.keys()]);
}

/** Splits rows for multi-row inserts (PostgreSQL takes at most 65,535 bind parameters). */
export function chunks<T>(rows: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

export async function createManyInChunks<T>(rows: readonly T[], size: number, insert: (part: T[]) => Promise<unknown>): Promise<void> {
  for (const part of chunks(rows, size)) await insert(part);
}

export interface DescriptionRow {
  tenantId: string;
  tagId: string;
  text: string;
  textHash: string;
  source: 'LLM' | 'TEMPLATE' | 'MANUAL';
  position: number;
  generatorModel?: string | null;
  generatorPrompt?: string | null;
}

/**
 * Inserts description rows with one statement per chunk (unnest of column arrays): thousands
 * of rows per call (hundreds of tags × 51) cost one round trip each, not one parameter list
 * per row.
 */
export async function insertDescriptions(tx: Tx, rows: readonly DescriptionRow[]): Promise<void> {
  for (const part of chunks(rows, 10_000)) {
    await tx.$executeRaw`
      INSERT INTO tag_descriptions (id, tenant_id, tag_id, text, text_hash, source, position, generator_model, generator_prompt, created_at)
      SELECT gen_random_uuid(), u.tenant_id, u.tag_id, u.text, u.text_hash, u.source::"DescriptionSource", u.position, u.model, u.prompt, now()
        FROM unnest(${part.map((r) => r.tenantId)}::uuid[], ${part.map((r) => r.tagId)}::uuid[], ${part.map((r) => r.text)}::text[],
                    ${part.map((r) => r.textHash)}::text[], ${part.map((r) => r.source)}::text[], ${part.map((r) => r.position)}::int[],
                    ${part.map((r) => r.generatorModel ?? null)}::text[], ${part.map((r) => r.generatorPrompt ?? null)}::text[])
          AS u(tenant_id, tag_id, text, text_hash, source, position, model, prompt)`;
  }
}

export interface NewTagRow {
  id: string;
  tenantId: string;
  vocabularyId: string;
  name: string;
  key: string;
  threshold: number | null;
  revision: number;
}

export async function insertTags(tx: Tx, rows: readonly NewTagRow[]): Promise<void> {
  for (const part of chunks(rows, 10_000)) {
    await tx.$executeRaw`
      INSERT INTO tags (id, tenant_id, vocabulary_id, name, key, threshold, revision, created_at, updated_at)
      SELECT u.id, u.tenant_id, u.vocabulary_id, u.name, u.key, u.threshold, u.revision, now(), now()
        FROM unnest(${part.map((r) => r.id)}::uuid[], ${part.map((r) => r.tenantId)}::uuid[], ${part.map((r) => r.vocabularyId)}::uuid[],
                    ${part.map((r) => r.name)}::text[], ${part.map((r) => r.key)}::text[], ${part.map((r) => r.threshold)}::float8[],
                    ${part.map((r) => r.revision)}::int[])
          AS u(id, tenant_id, vocabulary_id, name, key, threshold, revision)`;
  }
}
