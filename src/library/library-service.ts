/**
 * A tenant's image library: images kept with their encoder output so that they can be scored
 * again at decoder cost only, their results per vocabulary, listings ranked by a tag's score,
 * deletion, and an ad-hoc text search over the stored encodings (search.ts).
 *
 * Storing goes with tagging (src/tagging calls `prepare` before scoring and `keep` after it):
 * a duplicate (same SHA-256 in the tenant) is scored from its stored encoding and the image
 * encoder does not run.
 */
import { AppError, ErrorCode, badInput, isAppError, notFound } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import { isUuid } from '../core/ids.ts';
import type { Logger } from '../core/log.ts';
import { decodeValueCursor, encodeValueCursor, type Page } from '../core/paging.ts';
import {
  buildLabelBank,
  evictedBank,
  holdSegments,
  tagEmbeddings,
  type ImageEmbeddings,
  type ImageSource,
  type InferenceEngine,
  type LabelBank,
  type RequestOptions,
  type TagScores,
} from '../inference/index.ts';
import { packEncoding, unpackEncoding, type EncodingDtype } from './encoding.ts';
import { LibraryStore, type ImageRow, type RankedImageRow, type ResultRow, type StoredTagScore, type TagScoreRow } from './repository.ts';
import { makeThumbnail, thumbnailDataUrl, type Thumbnail, type ThumbnailFormat } from './thumbnail.ts';
import type { PrismaClient } from '../db/client.ts';
import { nameKey, normalizeText } from '../vocab/index.ts';

export interface LibrarySettings {
  /** How encodings are stored (OMNITAG_LIBRARY_ENCODING). */
  readonly encoding: EncodingDtype;
  /** Thumbnails: longest side and format, or null when they are off (OMNITAG_LIBRARY_THUMBNAIL_PX = 0). */
  readonly thumbnail: { readonly maxEdge: number; readonly format: ThumbnailFormat } | null;
  /** Tags below this probability are not kept unless they passed (OMNITAG_LIBRARY_SCORE_FLOOR). */
  readonly scoreFloor: number;
  /** Stored encodings decoded per engine call by a search (OMNITAG_LIBRARY_SEARCH_BATCH). */
  readonly searchBatch: number;
}

/** The tenant's quota of stored images (QUOTA_EXCEEDED `maxStoredImages`); read before the transaction, checked inside it. */
export interface ImageQuotas {
  storedImages(tenantId: string): Promise<{ admitImages(adding: number, stored: () => Promise<number>): Promise<void> }>;
}

export interface LibraryDeps {
  readonly prisma: PrismaClient;
  readonly engine: InferenceEngine;
  readonly settings: LibrarySettings;
  readonly quotas?: ImageQuotas | undefined;
  readonly log: Logger;
}

/** What is known of an image about to be stored, before it is scored. */
export interface StoreTicket {
  readonly sha256: string;
  readonly externalId: string | null;
  /** The tenant's stored image with these bytes, if any. */
  readonly existing: ImageRow | null;
  /** Its encoding, when this engine can score it: pass it to the engine instead of the bytes. */
  readonly embeddings: ImageEmbeddings | null;
}

/** What tagging hands over once the image is scored. */
export interface ScoredForLibrary {
  readonly bytes: Uint8Array;
  /** What the bytes were (null when scored from the stored encoding). */
  readonly source: Pick<ImageSource, 'format' | 'width' | 'height'> | null;
  readonly embeddings: ImageEmbeddings;
  readonly vocabularyId: string;
  readonly revision: number;
  readonly scores: TagScores;
  /** Tag id of bank row i. */
  tagIdAt(i: number): string;
}

export interface StoredImageOutcome {
  readonly image: ImageRow;
  /** False when the image was already stored (a duplicate). */
  readonly created: boolean;
}

/** One image of a listing: the row, and the ranking tag's score when ranked by one. */
export interface ImageHit {
  readonly id: string;
  readonly image: ImageRow;
  readonly tag: RankedImageRow | null;
}

export interface ImageFilter {
  /** A tag of the vocabulary, by id or name: rank by its score. */
  readonly tag?: string | null;
  readonly minScore?: number | null;
  readonly passed?: boolean | null;
  readonly externalId?: string | null;
}

export interface DeleteOutcome {
  /** The id as asked (an image id, or an external id). */
  readonly id: string;
  readonly deleted: boolean;
}

/** What stored images are re-scored against: a bank (the whole vocabulary, or some of its tags: `bankOfTags`). */
export interface RescoreTarget {
  readonly vocabularyId: string;
  /** The vocabulary revision the bank is of: results record it. */
  readonly revision: number;
  readonly bank: LabelBank;
  /** Tag id of bank row i. */
  tagIdAt(i: number): string;
  /** The bank holds only these tags (ids): their rows replace theirs, the image's other rows stay. Absent: the bank is the whole vocabulary. */
  readonly onlyTags?: readonly string[];
}

export interface RescoreOutcome {
  readonly imageId: string;
  /** False when a newer revision's result was already stored, or on error. */
  readonly written: boolean;
  /** NOT_FOUND (deleted meanwhile, another tenant's), ENCODER_CHANGED (another pack made its encoding), or null. */
  readonly error: string | null;
}

/** Longest client id accepted. */
export const MAX_EXTERNAL_ID_LENGTH = 256;

export class ImageLibrary {
  readonly store: LibraryStore;

  constructor(readonly deps: LibraryDeps) {
    this.store = new LibraryStore(deps.prisma);
  }

  get settings(): LibrarySettings {
    return this.deps.settings;
  }

  /** BAD_USER_INPUT unless `externalId` is 1…256 characters with no control character. */
  checkExternalId(externalId: string | null | undefined, field = 'externalId'): string | null {
    if (externalId == null) return null;
    // eslint-disable-next-line no-control-regex
    if (externalId.length === 0 || externalId.length > MAX_EXTERNAL_ID_LENGTH || /[\u0000-\u001f\u007f]/.test(externalId)) {
      throw badInput(`${field} must be 1 to ${MAX_EXTERNAL_ID_LENGTH} characters without control characters`, { field });
    }
    return externalId;
  }

  /**
   * Before scoring: the stored image with the same bytes, and its encoding when this engine can
   * use it. CONFLICT when `externalId` names another stored image, or the stored copy of these
   * bytes has another external id (one image, one name: see docs/library.md). QUOTA_EXCEEDED
   * (`maxStoredImages`) for new bytes when the library is already full.
   */
  async prepare(tenantId: string, bytes: Uint8Array, externalId: string | null): Promise<StoreTicket> {
    const sha256 = sha256Hex(bytes);
    const { existing, encoding } = await this.store.run(async (db) => {
      const row = await db.findBySha(tenantId, sha256);
      if (externalId !== null) await this.checkNames(db.findByExternalId(tenantId, externalId), row, sha256, externalId);
      const enc = row ? (await db.encodings(tenantId, [row.id])).get(row.id) : undefined;
      return { existing: row, encoding: enc };
    });
    // a new image over the quota is refused before the encoder runs for it (keep checks again, under the lock)
    if (!existing) {
      const quota = await this.deps.quotas?.storedImages(tenantId);
      await quota?.admitImages(1, () => this.store.run((db) => db.count(tenantId)));
    }
    let embeddings: ImageEmbeddings | null = null;
    if (existing && encoding) {
      try {
        embeddings = unpackEncoding(encoding, this.deps.engine.info, existing.id);
      } catch (e) {
        // encoded by another pack: the bytes are here, so the image is encoded again and its encoding replaced
        if (!isAppError(e) || e.code !== ErrorCode.ENCODER_CHANGED) throw e;
      }
    }
    return { sha256, externalId, existing, embeddings };
  }

  /**
   * After scoring: stores the image (unless it was already stored) and its result for the
   * vocabulary revision, in one transaction. QUOTA_EXCEEDED (`maxStoredImages`) for a new
   * image over the tenant's quota.
   */
  async keep(tenantId: string, ticket: StoreTicket, scored: ScoredForLibrary): Promise<StoredImageOutcome> {
    const { engine, settings } = this.deps;
    const encoding = packEncoding(scored.embeddings, settings.encoding, engine.info.imageEncoderId);
    const rows = this.scoreRows(scored);
    const thumbnail = ticket.existing ? null : await this.thumbnail(scored.bytes);
    const quota = ticket.existing ? undefined : await this.deps.quotas?.storedImages(tenantId);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.transaction(async (tx) => {
          let image = await tx.findBySha(tenantId, ticket.sha256);
          let created = false;
          if (ticket.externalId !== null) await this.checkNames(tx.findByExternalId(tenantId, ticket.externalId), image, ticket.sha256, ticket.externalId);
          if (!image) {
            if (!scored.source) throw new Error('a new library image needs the source of its bytes');
            const check = quota ?? (await this.deps.quotas?.storedImages(tenantId));
            await check?.admitImages(1, () => tx.countForQuota(tenantId));
            image = await tx.insertImage(tenantId, {
              sha256: ticket.sha256,
              externalId: ticket.externalId,
              format: scored.source.format,
              width: scored.source.width,
              height: scored.source.height,
              byteSize: scored.bytes.byteLength,
              encoding,
              thumbnail: thumbnail ?? (await this.thumbnail(scored.bytes)),
            });
            created = true;
          } else {
            if (image.encoderId !== encoding.encoderId) await tx.replaceEncoding(tenantId, image.id, encoding);
            if (ticket.externalId !== null && image.externalId === null) await tx.setExternalId(tenantId, image.id, ticket.externalId);
            image = (await tx.findById(tenantId, image.id))!;
          }
          await tx.writeResult(tenantId, { imageId: image.id, vocabularyId: scored.vocabularyId, revision: scored.revision, scoreFloor: settings.scoreFloor, scores: rows });
          return { image, created };
        });
      } catch (e) {
        // the same bytes (or name) stored by a concurrent request: once more, now finding it
        if (attempt < 2 && isAppError(e) && e.code === ErrorCode.CONFLICT && !e.details.field) continue;
        throw e;
      }
    }
  }

  /** The rows kept of a scored image: every tag that passed, and every tag at or above the floor. */
  scoreRows(scored: Pick<ScoredForLibrary, 'scores' | 'tagIdAt'>): TagScoreRow[] {
    const s = scored.scores;
    const floor = this.deps.settings.scoreFloor;
    const rows: TagScoreRow[] = [];
    for (let i = 0; i < s.tagCount; i++) {
      const p = s.probabilities[i]!;
      if (!s.passed[i] && p < floor) continue;
      rows.push({ tagId: scored.tagIdAt(i), score: p, logit: s.logits[i]!, passed: s.passed[i] === 1 });
    }
    return rows;
  }

  private async checkNames(byName: Promise<ImageRow | null>, bySha: ImageRow | null, sha256: string, externalId: string): Promise<void> {
    const named = await byName;
    if (named && named.sha256 !== sha256) {
      throw new AppError(ErrorCode.CONFLICT, `externalId "${externalId}" already names another stored image (other bytes); delete it first to replace it`, {
        details: { field: 'externalId', imageId: named.id },
      });
    }
    if (bySha && bySha.externalId !== null && bySha.externalId !== externalId) {
      throw new AppError(ErrorCode.CONFLICT, `this image is already stored under externalId "${bySha.externalId}"`, { details: { field: 'externalId', imageId: bySha.id } });
    }
  }

  private async thumbnail(bytes: Uint8Array): Promise<Thumbnail | null> {
    const t = this.deps.settings.thumbnail;
    if (!t) return null;
    try {
      return await makeThumbnail(bytes, t.maxEdge, t.format);
    } catch (err) {
      this.deps.log.warn({ err }, 'thumbnail of a stored image failed; stored without one');
      return null;
    }
  }

  // ---- reads ----

  /** NOT_FOUND for another tenant's, a missing or a malformed id. */
  async image(tenantId: string, id: string): Promise<ImageRow> {
    const row = await this.store.run((db) => db.findById(tenantId, id));
    if (!row) throw notFound('image');
    return row;
  }

  /** For DataLoaders: rows in the order of `ids`, null where there is none. */
  async imagesByIds(tenantId: string, ids: readonly string[]): Promise<(ImageRow | null)[]> {
    const rows = await this.store.run((db) => db.findByIds(tenantId, ids));
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.map((id) => byId.get(id) ?? null);
  }

  async thumbnailUrl(tenantId: string, id: string): Promise<string | null> {
    const t = await this.store.run((db) => db.thumbnail(tenantId, id));
    return t && thumbnailDataUrl(t);
  }

  /** An image's results, one per vocabulary it was scored against. */
  results(tenantId: string, imageId: string): Promise<ResultRow[]> {
    return this.store.run((db) => db.results(tenantId, [imageId]));
  }

  scores(tenantId: string, imageId: string, vocabularyId: string): Promise<StoredTagScore[]> {
    return this.store.run((db) => db.scores(tenantId, imageId, vocabularyId));
  }

  /**
   * A vocabulary's stored images: ranked by a tag's score (best first, ties by image id) when
   * `filter.tag` names one, else newest first. `minScore` is exact down to the score floor.
   * Cursors carry the position (score or time, and id): paging goes on past a row deleted since.
   */
  async list(tenantId: string, vocabularyId: string, filter: ImageFilter, page: { first: number; after?: string | null | undefined }): Promise<Page<ImageHit>> {
    const externalId = this.checkExternalId(filter.externalId, 'filter.externalId') ?? undefined;
    if (filter.minScore != null && (!Number.isFinite(filter.minScore) || filter.minScore < 0 || filter.minScore > 1)) {
      throw badInput('minScore must be between 0 and 1', { field: 'filter.minScore' });
    }
    if (filter.tag == null && (filter.minScore != null || filter.passed != null)) {
      throw badInput('minScore and passed filter by a tag: name it in filter.tag', { field: 'filter.tag' });
    }
    return this.store.run(async (db) => {
      if (!(await db.vocabularyExists(tenantId, vocabularyId))) throw notFound('vocabulary');
      if (filter.tag != null) {
        const tagId = await db.resolveTag(tenantId, vocabularyId, isUuid(filter.tag) ? { id: filter.tag } : { key: nameKey(normalizeText(filter.tag)) });
        if (!tagId) throw notFound('tag');
        const after = page.after ? decodeValueCursor<number>(page.after, 'number') : null;
        const position = after && { score: after.value, imageId: after.id };
        const { rows, total } = await db.rankByTag(tenantId, vocabularyId, tagId, { minScore: filter.minScore ?? undefined, passed: filter.passed ?? undefined, externalId }, { after: position, limit: page.first + 1 });
        const kept = rows.slice(0, page.first);
        const images = new Map((await db.findByIds(tenantId, kept.map((r) => r.imageId))).map((r) => [r.id, r]));
        const nodes = kept.flatMap((r) => (images.has(r.imageId) ? [{ id: r.imageId, image: images.get(r.imageId)!, tag: r }] : []));
        return { nodes, hasNextPage: rows.length > page.first, totalCount: total, cursorOf: (n: ImageHit) => encodeValueCursor(n.tag!.score, n.id) };
      }
      const after = page.after ? decodeValueCursor<string>(page.after, 'string') : null;
      const at = after && new Date(after.value);
      if (at && Number.isNaN(at.getTime())) throw badInput('invalid cursor', { field: 'after' });
      const position = at && { createdAt: at, imageId: after!.id };
      const { rows, total } = await db.newest(tenantId, vocabularyId, { externalId }, { after: position, limit: page.first + 1 });
      const nodes = rows.slice(0, page.first).map((image) => ({ id: image.id, image, tag: null }));
      return { nodes, hasNextPage: rows.length > page.first, totalCount: total, cursorOf: (n: ImageHit) => encodeValueCursor(n.image.createdAt.toISOString(), n.id) };
    });
  }

  /** The stored encoding of an image as embeddings this engine scores (NOT_FOUND; ENCODER_CHANGED). */
  async embeddings(tenantId: string, imageId: string): Promise<ImageEmbeddings> {
    const enc = (await this.store.run((db) => db.encodings(tenantId, [imageId]))).get(imageId);
    if (!enc) throw notFound('image');
    return unpackEncoding(enc, this.deps.engine.info, imageId);
  }

  /**
   * Scores stored images again from their encodings (the decoder only) and records the results:
   * what re-tagging after a vocabulary edit runs, batch by batch. Images of another encoder are
   * never scored (ENCODER_CHANGED in their outcome); results of a newer revision are kept.
   */
  async rescore(tenantId: string, imageIds: readonly string[], target: RescoreTarget, run: RequestOptions = {}): Promise<RescoreOutcome[]> {
    const { engine } = this.deps;
    const encodings = await this.store.run((db) => db.encodings(tenantId, imageIds));
    const outcomes = new Map<string, RescoreOutcome>();
    const usable: { id: string; embeddings: ImageEmbeddings }[] = [];
    for (const id of imageIds) {
      const enc = encodings.get(id);
      if (!enc) outcomes.set(id, { imageId: id, written: false, error: ErrorCode.NOT_FOUND });
      else if (enc.encoderId !== engine.info.imageEncoderId) outcomes.set(id, { imageId: id, written: false, error: ErrorCode.ENCODER_CHANGED });
      else usable.push({ id, embeddings: unpackEncoding(enc, engine.info, id) });
    }
    if (usable.length) {
      const admission = run.admission ?? engine.admit(usable.length);
      try {
        const scored = await engine.scoreImages(
          usable.map((u) => u.embeddings),
          [target.bank],
          { ...run, fairnessKey: run.fairnessKey ?? tenantId, admission },
        );
        const floor = this.deps.settings.scoreFloor;
        const written = await this.store.transaction(async (tx) => {
          const done: boolean[] = [];
          for (const [i, s] of scored.entries()) {
            const rows = this.scoreRows({ scores: s.scores[0]!, tagIdAt: target.tagIdAt });
            const ok = await tx.writeResult(tenantId, { imageId: usable[i]!.id, vocabularyId: target.vocabularyId, revision: target.revision, scoreFloor: floor, scores: rows, ...(target.onlyTags ? { onlyTags: target.onlyTags } : {}) });
            done.push(ok);
          }
          return done;
        });
        usable.forEach((u, i) => outcomes.set(u.id, { imageId: u.id, written: written[i]!, error: null }));
      } finally {
        if (!run.admission) admission.release();
      }
    }
    return imageIds.map((id) => outcomes.get(id)!);
  }

  // ---- deletion ----

  /** Deletes images with everything kept of them; per id whether it was deleted (others' and unknown ids: false). */
  async delete(tenantId: string, ids: readonly string[]): Promise<DeleteOutcome[]> {
    const gone = new Set(await this.store.run((db) => db.deleteByIds(tenantId, [...new Set(ids)])));
    return ids.map((id) => ({ id, deleted: isUuid(id) && gone.has(id) }));
  }

  async deleteByExternalId(tenantId: string, externalIds: readonly string[]): Promise<DeleteOutcome[]> {
    const gone = new Set((await this.store.run((db) => db.deleteByExternalIds(tenantId, [...new Set(externalIds)]))).map((r) => r.externalId));
    return externalIds.map((id) => ({ id, deleted: gone.has(id) }));
  }

  count(tenantId: string): Promise<number> {
    return this.store.run((db) => db.count(tenantId));
  }
}

/**
 * A bank of some tags of `bank` (by index), their rows copied into a segment of their own: the
 * decoder then runs for those tags only (a bank that merely points into the vocabulary's
 * segments would decode them whole). For re-scoring the tags a vocabulary edit changed.
 */
export function bankOfTags(bank: LabelBank, indices: readonly number[], key: string): LabelBank {
  const release = holdSegments(bank.segments);
  if (!release) throw evictedBank();
  try {
    return buildLabelBank({
      key,
      embedDim: bank.embedDim,
      // copies: the new segment must not alias the vocabulary's memory
      tags: indices.map((i) => ({ descriptions: tagEmbeddings(bank, i).slice(), threshold: bank.thresholds[i]! })),
    });
  } finally {
    release();
  }
}
