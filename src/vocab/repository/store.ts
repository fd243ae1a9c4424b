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
import { VocabularyRepository, type RevisionChange } from './vocabularies.ts';

export type { RevisionChange };

/** Told after commit of each vocabulary revision an edit made (at most once per vocabulary and edit, the newest). */
export type RevisionListener = (changes: readonly RevisionChange[]) => void;

export interface Repositories {
  readonly vocabularies: VocabularyRepository;
  readonly tags: TagRepository;
  readonly descriptions: DescriptionRepository;
  readonly jobs: JobRepository;
  readonly claims: JobClaimRepository;
}

function repositoriesOn(db: Db, onRevision?: (change: RevisionChange) => void): Repositories {
  return {
    vocabularies: new VocabularyRepository(db, onRevision),
    tags: new TagRepository(db),
    descriptions: new DescriptionRepository(db),
    jobs: new JobRepository(db),
    claims: new JobClaimRepository(db),
  };
}

export class VocabStore {
  private readonly direct: Repositories;
  private readonly listeners: RevisionListener[] = [];

  constructor(private readonly prisma: PrismaClient) {
    this.direct = repositoriesOn(prisma, (change) => this.tell([change]));
  }

  /**
   * Adds a listener of new revisions, told once the edit that made them has committed (an edit
   * rolled back tells nobody). Listeners must not throw; they run after the caller's result is ready.
   */
  onRevision(listener: RevisionListener): void {
    this.listeners.push(listener);
  }

  private tell(changes: readonly RevisionChange[]): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) listener(changes);
  }

  /** Statements outside a transaction (each commits on its own). */
  run<T>(fn: (db: Repositories) => Promise<T>): Promise<T> {
    return translated(fn(this.direct));
  }

  /** One transaction. */
  async transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T> {
    // Only the newest revision per vocabulary is told: listeners care where it now is.
    const changes = new Map<string, RevisionChange>();
    const result = await inTransaction(this.prisma, (tx) => {
      changes.clear(); // a retried callback starts over
      return fn(repositoriesOn(tx, (c) => changes.set(`${c.tenantId}/${c.vocabularyId}`, c)));
    });
    this.tell([...changes.values()]);
    return result;
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
