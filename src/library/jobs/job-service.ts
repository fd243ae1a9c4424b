/**
 * Library jobs as the API sees them: queue an import (its images read and staged in one
 * transaction, or nothing), read a job and its items, cancel it, and the re-tagging a
 * vocabulary's edits ask for.
 */
import type { PrismaClient } from '../../db/client.ts';
import { translateDbError } from '../../db/client.ts';
import { AppError, ErrorCode, badInput, isAppError, notFound } from '../../core/errors.ts';
import { isUuid } from '../../core/ids.ts';
import type { Logger } from '../../core/log.ts';
import type { Page } from '../../core/paging.ts';
import { LibraryJobRepository, type LibraryItemState, type LibraryJob, type LibraryJobItemRow, type StagedImage } from './job-repository.ts';

export type { LibraryJob, LibraryJobItemRow };

export interface LibraryJobSettings {
  readonly maxImagesPerJob: number;
  readonly maxJobBytes: number;
  readonly maxPendingBytes: number;
}

/** One image of an import as the API gives it: exactly one of upload, base64 or url. */
export interface ImportImageInput {
  readonly upload?: unknown;
  readonly base64?: string | null;
  readonly url?: string | null;
  readonly externalId?: string | null;
}

/**
 * Reads an upload or base64 image into bytes within the image size limit (the tagging layer's
 * reader: BAD_USER_INPUT, IMAGE_TOO_LARGE), wired by the composition root.
 */
export type ImageReader<I extends ImportImageInput> = (input: I, signal: AbortSignal | undefined) => Promise<Uint8Array>;

/** A vocabulary's re-tagging job with how far its stored images are. */
export interface RetagProgressView extends LibraryJob {
  readonly imagesBehind: number;
  readonly imagesTotal: number;
}

/** A job with its items counted by state (the API's progress). */
export interface LibraryJobView extends LibraryJob {
  readonly counts: Record<LibraryItemState, number>;
}

export class LibraryJobService<I extends ImportImageInput = ImportImageInput> {
  private readonly repo: LibraryJobRepository;

  constructor(
    private readonly deps: {
      prisma: PrismaClient;
      settings: LibraryJobSettings;
      readImage: ImageReader<I>;
      /** BAD_USER_INPUT for an external id the library would refuse (`ImageLibrary.checkExternalId`). */
      checkExternalId: (externalId: string, field: string) => unknown;
      /** Whether URLs may be imported (OMNITAG_ALLOW_URL_FETCH): the worker fetches them. */
      urlFetching: boolean;
      log: Logger;
      /** New work is queued: the local worker looks at once. */
      nudge: () => void;
    },
  ) {
    this.repo = new LibraryJobRepository(deps.prisma);
  }

  /**
   * Reads every image of the request and queues them as one job. An image that cannot be read
   * (bad base64, over the image size, URLs disabled) becomes a FAILED item with its code; the
   * job as a whole is refused, with nothing queued, when it is over `maxImagesPerJob`, over
   * `maxJobBytes` of staged bytes (PAYLOAD_TOO_LARGE) or when the tenant's unfinished imports
   * would then hold more than `maxPendingBytes` (QUOTA_EXCEEDED). URLs are fetched by the worker.
   */
  async importImages(tenantId: string, vocabularyId: string, images: readonly I[], signal?: AbortSignal): Promise<LibraryJob> {
    const { settings, prisma } = this.deps;
    if (images.length === 0) throw badInput('send at least one image', { field: 'images' });
    if (images.length > settings.maxImagesPerJob) throw badInput(`at most ${settings.maxImagesPerJob} images per import (OMNITAG_IMPORT_MAX_IMAGES)`, { field: 'images' });
    await this.vocabulary(tenantId, vocabularyId);
    const seen = new Set<string>();
    const staged: StagedImage[] = [];
    let bytes = 0;
    for (const [index, image] of images.entries()) {
      const externalId = image.externalId ?? null;
      if (externalId !== null) {
        this.deps.checkExternalId(externalId, `images[${index}].externalId`);
        if (seen.has(externalId)) throw badInput(`externalId "${externalId}" is given twice in this import`, { field: `images[${index}].externalId` });
        seen.add(externalId);
      }
      if (image.url != null && image.upload == null && image.base64 == null) {
        staged.push(this.deps.urlFetching ? { url: image.url, externalId } : { externalId, error: { code: ErrorCode.FORBIDDEN, message: 'images by URL are disabled on this server (OMNITAG_ALLOW_URL_FETCH)' } });
        continue;
      }
      try {
        const data = await this.deps.readImage(image, signal);
        bytes += data.length;
        if (bytes > settings.maxJobBytes) {
          throw new AppError(ErrorCode.PAYLOAD_TOO_LARGE, `the import's images are over the ${settings.maxJobBytes}-byte limit of one import (OMNITAG_IMPORT_MAX_JOB_BYTES); split it`, {
            details: { limit: settings.maxJobBytes, index },
          });
        }
        staged.push({ data, externalId });
      } catch (e) {
        if (!isAppError(e) || e.code === ErrorCode.PAYLOAD_TOO_LARGE || e.code === ErrorCode.INTERNAL_SERVER_ERROR) throw e;
        staged.push({ externalId, error: { code: e.code, message: e.message } });
      }
    }
    const job = await prisma
      .$transaction(
        async (tx) => {
          const repo = new LibraryJobRepository(tx);
          await repo.lockTenant(tenantId);
          return repo.createImport(tenantId, vocabularyId, staged, settings.maxPendingBytes);
        },
        { maxWait: 30_000, timeout: 120_000 },
      )
      .catch(translateDbError);
    this.deps.log.info({ tenantId, job: job.id, images: images.length, bytes }, 'import queued');
    this.deps.nudge();
    return job;
  }

  /** An import of the tenant: NOT_FOUND for another tenant's, a missing or a malformed id (and for a re-tagging job's). */
  async getImport(tenantId: string, id: string): Promise<LibraryJobView> {
    if (!isUuid(id)) throw notFound('import job');
    const job = await this.repo.byId(tenantId, id).catch(translateDbError);
    if (!job || job.kind !== 'IMPORT') throw notFound('import job');
    return { ...job, counts: await this.repo.itemCounts(tenantId, id) };
  }

  items(tenantId: string, jobId: string, page: { first: number; after?: string | null; state?: LibraryItemState | null }): Promise<Page<LibraryJobItemRow>> {
    return this.repo.items(tenantId, jobId, page.state ?? undefined, page).catch(translateDbError);
  }

  /** Cancels an unfinished import (a finished one is returned as it is). */
  async cancelImport(tenantId: string, id: string): Promise<LibraryJobView> {
    await this.getImport(tenantId, id);
    await this.repo.cancel(tenantId, id).catch(translateDbError);
    this.deps.log.info({ tenantId, job: id }, 'import cancelled');
    return this.getImport(tenantId, id);
  }

  /** The vocabulary's unfinished re-tagging job, or its last one, with its stored images' progress; null when it never had one. */
  async retagProgress(tenantId: string, vocabularyId: string): Promise<RetagProgressView | null> {
    const job = await this.repo.latestRetag(tenantId, vocabularyId).catch(translateDbError);
    if (!job) return null;
    const { behind, total } = await this.repo.resultsBehind(tenantId, vocabularyId).catch(translateDbError);
    return { ...job, imagesBehind: behind, imagesTotal: total };
  }

  /**
   * Queues (or raises the target of) the vocabulary's re-tagging toward `revision`, when it has
   * stored results behind it. Called after each edit commits (the vocabulary's revision listener).
   */
  async requestRetag(tenantId: string, vocabularyId: string, revision: number): Promise<void> {
    const { created } = await this.repo.requestRetag(tenantId, vocabularyId, revision).catch(translateDbError);
    if (created) this.deps.nudge();
  }

  /** Queues the re-tagging an edit asked for but whose process died before queuing it (run at start). */
  async requestMissedRetags(limit = 1_000): Promise<number> {
    const behind = await this.repo.behindWithoutJob(limit).catch(translateDbError);
    for (const b of behind) await this.requestRetag(b.tenantId, b.vocabularyId, b.revision);
    return behind.length;
  }

  /** Items of every tenant by state (metrics). */
  itemsByState() {
    return this.repo.itemsByState().catch(translateDbError);
  }

  private async vocabulary(tenantId: string, id: string): Promise<void> {
    if (!isUuid(id)) throw notFound('vocabulary');
    const found = await this.deps.prisma.vocabulary.findFirst({ where: { tenantId, id }, select: { id: true } }).catch(translateDbError);
    if (!found) throw notFound('vocabulary');
  }
}
