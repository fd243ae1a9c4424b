/**
 * Library jobs, built in one place for the composition root: the service the API calls, the
 * worker any replica runs, and the revision listener that queues re-tagging after edits.
 */
import type { Config } from '../../config.ts';
import type { PrismaClient } from '../../db/client.ts';
import type { Logger } from '../../core/log.ts';
import type { RevisionChange } from '../../vocab/index.ts';
import { LibraryJobService, type ImageReader, type ImportImageInput } from './job-service.ts';
import { LibraryJobWorker, type ImageImporter, type Retagger } from './worker.ts';

export type { ImageImporter, ImageReader, ImportImageInput, Retagger };
export type { LibraryJobView, RetagProgressView, LibraryJobItemRow } from './job-service.ts';
export { LibraryJobService, LibraryJobWorker };

export interface LibraryJobsOptions<I extends ImportImageInput> {
  prisma: PrismaClient;
  config: Pick<Config, 'libraryJobs'> & { readonly vocab: Pick<Config['vocab'], 'worker'> };
  importer: ImageImporter;
  retagger: Retagger;
  readImage: ImageReader<I>;
  checkExternalId: (externalId: string, field: string) => unknown;
  urlFetching: boolean;
  log: Logger;
}

export interface LibraryJobs<I extends ImportImageInput> {
  readonly service: LibraryJobService<I>;
  readonly worker: LibraryJobWorker;
  /** Give to `VocabularyServices.onRevision`: each edit's new revision queues re-tagging. */
  onRevision(changes: readonly RevisionChange[]): void;
  /** Starts the worker (unless OMNITAG_LIBRARY_WORKER is false) and queues re-tagging an edit could not queue before a crash. */
  start(): void;
  /** Stops the worker, handing its items back. */
  stop(): Promise<void>;
}

export function createLibraryJobs<I extends ImportImageInput>(options: LibraryJobsOptions<I>): LibraryJobs<I> {
  const { prisma, config, log } = options;
  const { libraryJobs: settings } = config;
  // Claims, leases, polling and retries are those of description jobs: one way to run jobs.
  const timing = config.vocab.worker;
  const worker = new LibraryJobWorker(
    { prisma, importer: options.importer, retagger: options.retagger, log },
    {
      concurrency: settings.concurrency,
      pollIntervalMs: timing.pollIntervalMs,
      leaseMs: timing.leaseMs,
      renewEveryMs: timing.renewEveryMs,
      maxAttempts: timing.maxAttempts,
      retryBaseMs: timing.retryBaseMs,
      retryMaxMs: timing.retryMaxMs,
      retagBatch: settings.retagBatch,
    },
  );
  const service = new LibraryJobService<I>({
    prisma,
    settings,
    readImage: options.readImage,
    checkExternalId: options.checkExternalId,
    urlFetching: options.urlFetching,
    log,
    nudge: () => worker.nudge(),
  });
  return {
    service,
    worker,
    onRevision(changes) {
      for (const c of changes) {
        service.requestRetag(c.tenantId, c.vocabularyId, c.revision).catch((err) => log.warn({ err, vocabulary: c.vocabularyId }, 'could not queue re-tagging; it is queued when a library worker next starts'));
      }
    },
    start() {
      if (!settings.enabled) return;
      worker.start();
      service.requestMissedRetags().then(
        (n) => n && log.info({ vocabularies: n }, 're-tagging queued for vocabularies left behind'),
        (err) => log.warn({ err }, 'could not look for vocabularies left behind'),
      );
    },
    stop: () => worker.stop(),
  };
}
