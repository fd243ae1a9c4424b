/**
 * The repositories the use-cases and the worker go through. Style: Prisma client calls for
 * plain rows, Prisma's `$queryRaw` / `$executeRaw` tagged templates where SQL is needed (bulk
 * unnest inserts, FOR UPDATE locks, SKIP LOCKED claims). The hot read paths of label banks and
 * the embedding table use the same pg pool directly (snapshots.ts, embeddings.ts).
 *
 * Every edit of a vocabulary runs in one transaction that first locks the vocabulary row
 * (`edit`): edits of one vocabulary serialise, each commits exactly one new revision, and the
 * tags it changed carry that revision, which is what incremental label-bank compiles look for.
 */
import type { PrismaClient } from '../../db/client.ts';
import { DescriptionRepository } from './descriptions.ts';
import { JobClaimRepository } from './job-claims.ts';
import { JobRepository } from './jobs.ts';
import { TagRepository } from './tags.ts';
import { inTransaction, translated, type Db } from './transactions.ts';
import { VocabularyRepository } from './vocabularies.ts';

export interface Repositories {
  readonly vocabularies: VocabularyRepository;
  readonly tags: TagRepository;
  readonly descriptions: DescriptionRepository;
  readonly jobs: JobRepository;
  readonly claims: JobClaimRepository;
}

function repositoriesOn(db: Db): Repositories {
  return {
    vocabularies: new VocabularyRepository(db),
    tags: new TagRepository(db),
    descriptions: new DescriptionRepository(db),
    jobs: new JobRepository(db),
    claims: new JobClaimRepository(db),
  };
}

export class VocabStore {
  private readonly direct: Repositories;

  constructor(private readonly prisma: PrismaClient) {
    this.direct = repositoriesOn(prisma);
  }

  /** Statements outside a transaction (each commits on its own). */
  run<T>(fn: (db: Repositories) => Promise<T>): Promise<T> {
    return translated(fn(this.direct));
  }

  /** One transaction. */
  transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T> {
    return inTransaction(this.prisma, (tx) => fn(repositoriesOn(tx)));
  }

  /**
   * One edit of a tenant's vocabulary: a transaction that first locks its row and gives `fn`
   * the current revision (NOT_FOUND for another tenant's, a missing or a malformed id). `fn`
   * sets the next revision when it changed anything.
   */
  edit<T>(tenantId: string, vocabularyId: string, fn: (tx: Repositories, revision: number) => Promise<T>): Promise<T> {
    return this.transaction(async (tx) => fn(tx, await tx.vocabularies.lock(tenantId, vocabularyId)));
  }
}
