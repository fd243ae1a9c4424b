/**
 * Every table of the image library read and written in one place, every query scoped by the
 * tenant: `library_images` (one row per stored image: its facts, encoding and thumbnail),
 * `image_results` (per image and vocabulary: the revision its scores reflect) and
 * `image_tag_scores` (per tag: score, logit, passed). Deleting an image, a vocabulary, a tag or
 * a tenant removes what hangs off it through the foreign keys (ON DELETE CASCADE).
 *
 * Style as in src/vocab/repository: Prisma client calls for plain rows, `$queryRaw` where SQL is
 * needed (unnest inserts, the ranking with its keyset cursor, the quota lock).
 */
import { translateDbError, type PrismaClient } from '../db/client.ts';
import { isUuid } from '../core/ids.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import type { EncodingDtype, StoredEncoding } from './encoding.ts';
import type { Thumbnail } from './thumbnail.ts';

/** The Prisma client or one of its transactions. */
export type Db = Prisma.TransactionClient;

/** A stored image without its encoding and thumbnail bytes. */
export interface ImageRow {
  readonly id: string;
  readonly tenantId: string;
  readonly externalId: string | null;
  readonly sha256: string;
  readonly format: string;
  readonly width: number;
  readonly height: number;
  readonly byteSize: number;
  readonly encoderId: string;
  readonly encodingDtype: EncodingDtype;
  readonly encodingTokens: number;
  readonly encodingDim: number;
  /** MIME type of the thumbnail; null when the image has none. */
  readonly thumbnailType: string | null;
  readonly createdAt: Date;
}

export interface NewImage {
  readonly sha256: string;
  readonly externalId: string | null;
  readonly format: string;
  readonly width: number;
  readonly height: number;
  readonly byteSize: number;
  readonly encoding: StoredEncoding;
  readonly thumbnail: Thumbnail | null;
}

/** One tag's score on an image, as the engine returned it. */
export interface TagScoreRow {
  readonly tagId: string;
  readonly score: number;
  readonly logit: number;
  readonly passed: boolean;
}

export interface StoredTagScore extends TagScoreRow {
  /** Vocabulary revision the score was computed at. */
  readonly revision: number;
}

/** What an image scored against a vocabulary revision. */
export interface ResultWrite {
  readonly imageId: string;
  readonly vocabularyId: string;
  readonly revision: number;
  /** Probabilities below it were left out of `scores` (unless the tag passed). */
  readonly scoreFloor: number;
  readonly scores: readonly TagScoreRow[];
  /**
   * Replace only these tags' rows (re-scoring changed tags); absent: replace every row of the
   * image for the vocabulary.
   */
  readonly onlyTags?: readonly string[];
}

/** A stored result older than its vocabulary's revision. */
export interface StaleResult {
  readonly imageId: string;
  /** The revision the result reflects. */
  readonly revision: number;
}

/** An image's result for one vocabulary, with the vocabulary's own revision to compare. */
export interface ResultRow {
  readonly imageId: string;
  readonly vocabularyId: string;
  readonly revision: number;
  readonly currentRevision: number;
  readonly scoreFloor: number;
  readonly updatedAt: Date;
}

export interface RankFilter {
  readonly minScore?: number | undefined;
  readonly passed?: boolean | undefined;
  readonly externalId?: string | undefined;
}

/** An image in a ranking by one tag: the image id and that tag's stored score. */
export interface RankedImageRow {
  readonly imageId: string;
  readonly tagId: string;
  readonly score: number;
  readonly logit: number;
  readonly passed: boolean;
  readonly revision: number;
}

const IMAGE_SELECT = {
  id: true,
  tenantId: true,
  externalId: true,
  sha256: true,
  format: true,
  width: true,
  height: true,
  byteSize: true,
  encoderId: true,
  encodingDtype: true,
  encodingTokens: true,
  encodingDim: true,
  thumbnailType: true,
  createdAt: true,
} as const;

const toDtype = (d: 'FLOAT16' | 'FLOAT32'): EncodingDtype => (d === 'FLOAT16' ? 'float16' : 'float32');
const fromDtype = (d: EncodingDtype) => (d === 'float16' ? ('FLOAT16' as const) : ('FLOAT32' as const));

type RawImage = Omit<ImageRow, 'encodingDtype'> & { encodingDtype: 'FLOAT16' | 'FLOAT32' };
const toImage = (r: RawImage): ImageRow => ({ ...r, encodingDtype: toDtype(r.encodingDtype) });

type RawEncoding = { id: string; encoderId: string; encodingDtype: 'FLOAT16' | 'FLOAT32'; encodingTokens: number; encodingDim: number; encoding: Uint8Array };
const toEncoding = (r: RawEncoding): StoredEncoding => ({ dtype: toDtype(r.encodingDtype), tokens: r.encodingTokens, dim: r.encodingDim, encoderId: r.encoderId, bytes: r.encoding });
const ENCODING_SELECT = { id: true, encoderId: true, encodingDtype: true, encodingTokens: true, encodingDim: true, encoding: true } as const;

/** Rows of image_tag_scores written per statement. */
const SCORE_CHUNK = 2_000;

export class LibraryRepository {
  constructor(private readonly db: Db) {}

  async findById(tenantId: string, id: string): Promise<ImageRow | null> {
    if (!isUuid(id)) return null;
    const r = await this.db.libraryImage.findUnique({ where: { tenantId_id: { tenantId, id } }, select: IMAGE_SELECT });
    return r && toImage(r);
  }

  async findByIds(tenantId: string, ids: readonly string[]): Promise<ImageRow[]> {
    const valid = ids.filter(isUuid);
    if (!valid.length) return [];
    const rows = await this.db.libraryImage.findMany({ where: { tenantId, id: { in: valid } }, select: IMAGE_SELECT });
    return rows.map(toImage);
  }

  async findBySha(tenantId: string, sha256: string): Promise<ImageRow | null> {
    const r = await this.db.libraryImage.findUnique({ where: { tenantId_sha256: { tenantId, sha256 } }, select: IMAGE_SELECT });
    return r && toImage(r);
  }

  async findByExternalId(tenantId: string, externalId: string): Promise<ImageRow | null> {
    const r = await this.db.libraryImage.findUnique({ where: { tenantId_externalId: { tenantId, externalId } }, select: IMAGE_SELECT });
    return r && toImage(r);
  }

  async thumbnail(tenantId: string, id: string): Promise<Thumbnail | null> {
    if (!isUuid(id)) return null;
    const r = await this.db.libraryImage.findUnique({ where: { tenantId_id: { tenantId, id } }, select: { thumbnail: true, thumbnailType: true } });
    return r?.thumbnail && r.thumbnailType ? { bytes: r.thumbnail, type: r.thumbnailType } : null;
  }

  /** Encodings of some images (missing and other tenants' ids are left out). */
  async encodings(tenantId: string, ids: readonly string[]): Promise<Map<string, StoredEncoding>> {
    const valid = ids.filter(isUuid);
    if (!valid.length) return new Map();
    const rows = await this.db.libraryImage.findMany({ where: { tenantId, id: { in: valid } }, select: ENCODING_SELECT });
    return new Map(rows.map((r) => [r.id, toEncoding(r)]));
  }

  /**
   * One page of the tenant's encodings in id order (keyset: ids after `after`), for passes over
   * the whole library in bounded memory (search, re-scoring); with `vocabularyId`, only the
   * images that have a result for it.
   */
  async encodingPage(tenantId: string, page: { after?: string | null; limit: number; vocabularyId?: string | undefined }): Promise<{ id: string; encoding: StoredEncoding }[]> {
    const rows = await this.db.libraryImage.findMany({
      where: {
        tenantId,
        ...(page.after ? { id: { gt: page.after } } : {}),
        // only images scored against the vocabulary
        ...(page.vocabularyId ? { results: { some: { vocabularyId: page.vocabularyId } } } : {}),
      },
      select: ENCODING_SELECT,
      orderBy: { id: 'asc' },
      take: page.limit,
    });
    return rows.map((r) => ({ id: r.id, encoding: toEncoding(r) }));
  }

  /** CONFLICT (translated P2002) when the tenant already has the sha256 or externalId. */
  async insertImage(tenantId: string, image: NewImage): Promise<ImageRow> {
    const e = image.encoding;
    const r = await this.db.libraryImage.create({
      data: {
        tenantId,
        externalId: image.externalId,
        sha256: image.sha256,
        format: image.format,
        width: image.width,
        height: image.height,
        byteSize: image.byteSize,
        encoderId: e.encoderId,
        encodingDtype: fromDtype(e.dtype),
        encodingTokens: e.tokens,
        encodingDim: e.dim,
        encoding: e.bytes as Uint8Array<ArrayBuffer>,
        thumbnail: (image.thumbnail?.bytes ?? null) as Uint8Array<ArrayBuffer> | null,
        thumbnailType: image.thumbnail?.type ?? null,
      },
      select: IMAGE_SELECT,
    });
    return toImage(r);
  }

  async setExternalId(tenantId: string, id: string, externalId: string): Promise<void> {
    await this.db.libraryImage.update({ where: { tenantId_id: { tenantId, id } }, data: { externalId } });
  }

  /** A new encoding of a stored image (made by the engine now in use). */
  async replaceEncoding(tenantId: string, id: string, e: StoredEncoding): Promise<void> {
    await this.db.libraryImage.update({
      where: { tenantId_id: { tenantId, id } },
      data: { encoderId: e.encoderId, encodingDtype: fromDtype(e.dtype), encodingTokens: e.tokens, encodingDim: e.dim, encoding: e.bytes as Uint8Array<ArrayBuffer> },
    });
  }

  /**
   * Stored images of the tenant, counted under a per-tenant lock held to the end of the
   * transaction: concurrent stores of one tenant serialise here, so a quota cannot be overshot.
   */
  async countForQuota(tenantId: string): Promise<number> {
    await this.db.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`omnitag-images-quota:${tenantId}`}, 0))`;
    return this.db.libraryImage.count({ where: { tenantId } });
  }

  async count(tenantId: string): Promise<number> {
    return this.db.libraryImage.count({ where: { tenantId } });
  }

  /**
   * Records an image's scores for a vocabulary revision. A result of a newer revision is never
   * overwritten by an older one (a late writer loses): answers whether this one was written.
   */
  async writeResult(tenantId: string, w: ResultWrite): Promise<boolean> {
    const applied = await this.db.$queryRaw<{ ok: number }[]>`
      INSERT INTO image_results (tenant_id, image_id, vocabulary_id, revision, score_floor, updated_at)
      VALUES (${tenantId}::uuid, ${w.imageId}::uuid, ${w.vocabularyId}::uuid, ${w.revision}, ${w.scoreFloor}, now())
      ON CONFLICT (image_id, vocabulary_id) DO UPDATE
         SET revision = EXCLUDED.revision, score_floor = EXCLUDED.score_floor, updated_at = now()
       WHERE image_results.revision <= EXCLUDED.revision
      RETURNING 1 AS ok`;
    if (!applied.length) return false;
    if (w.onlyTags) {
      if (w.onlyTags.length) {
        await this.db.$executeRaw`
          DELETE FROM image_tag_scores
           WHERE image_id = ${w.imageId}::uuid AND vocabulary_id = ${w.vocabularyId}::uuid AND tag_id = ANY(${w.onlyTags.filter(isUuid)}::uuid[])`;
      }
    } else {
      await this.db.$executeRaw`DELETE FROM image_tag_scores WHERE image_id = ${w.imageId}::uuid AND vocabulary_id = ${w.vocabularyId}::uuid`;
    }
    for (let i = 0; i < w.scores.length; i += SCORE_CHUNK) {
      const part = w.scores.slice(i, i + SCORE_CHUNK);
      await this.db.$executeRaw`
        INSERT INTO image_tag_scores (tenant_id, image_id, vocabulary_id, tag_id, score, logit, passed, revision)
        SELECT ${tenantId}::uuid, ${w.imageId}::uuid, ${w.vocabularyId}::uuid, u.tag, u.score, u.logit, u.passed, ${w.revision}
          FROM unnest(${part.map((s) => s.tagId)}::uuid[], ${part.map((s) => s.score)}::float8[], ${part.map((s) => s.logit)}::float8[], ${part.map((s) => s.passed)}::bool[])
            AS u(tag, score, logit, passed)`;
    }
    return true;
  }

  /**
   * Results of a vocabulary older than `revision`, of images encoded by `encoderId` (another
   * encoder's are never scored), oldest revision first: re-tagging's next batch.
   */
  async staleResults(tenantId: string, vocabularyId: string, revision: number, encoderId: string, limit: number): Promise<StaleResult[]> {
    return this.db.$queryRaw<StaleResult[]>`
      SELECT r.image_id AS "imageId", r.revision
        FROM image_results r JOIN library_images i ON i.id = r.image_id AND i.tenant_id = r.tenant_id
       WHERE r.tenant_id = ${tenantId}::uuid AND r.vocabulary_id = ${vocabularyId}::uuid AND r.revision < ${revision}::int AND i.encoder_id = ${encoderId}
       ORDER BY r.revision, r.image_id
       LIMIT ${limit}`;
  }

  /** Results of some images, every vocabulary, with each vocabulary's current revision. */
  async results(tenantId: string, imageIds: readonly string[]): Promise<ResultRow[]> {
    const valid = imageIds.filter(isUuid);
    if (!valid.length) return [];
    return this.db.$queryRaw<ResultRow[]>`
      SELECT r.image_id AS "imageId", r.vocabulary_id AS "vocabularyId", r.revision, v.revision AS "currentRevision",
             r.score_floor AS "scoreFloor", r.updated_at AS "updatedAt"
        FROM image_results r JOIN vocabularies v ON v.id = r.vocabulary_id AND v.tenant_id = r.tenant_id
       WHERE r.tenant_id = ${tenantId}::uuid AND r.image_id = ANY(${valid}::uuid[])
       ORDER BY r.image_id, v.created_at, r.vocabulary_id`;
  }

  /** An image's stored tag scores for a vocabulary, best first. */
  async scores(tenantId: string, imageId: string, vocabularyId: string): Promise<StoredTagScore[]> {
    if (!isUuid(imageId) || !isUuid(vocabularyId)) return [];
    return this.db.imageTagScore.findMany({
      where: { tenantId, imageId, vocabularyId },
      select: { tagId: true, score: true, logit: true, passed: true, revision: true },
      orderBy: [{ score: 'desc' }, { tagId: 'asc' }],
    });
  }

  /** The id of a vocabulary's tag given by id or by its comparison key (see vocab's `nameKey`); null when none. */
  async resolveTag(tenantId: string, vocabularyId: string, tag: { id?: string; key?: string }): Promise<string | null> {
    if (tag.id !== undefined && !isUuid(tag.id)) return null;
    const where = tag.id !== undefined ? { tenantId, vocabularyId, id: tag.id } : { tenantId, vocabularyId, key: tag.key ?? '' };
    const row = await this.db.tag.findFirst({ where, select: { id: true } });
    return row?.id ?? null;
  }

  async vocabularyExists(tenantId: string, vocabularyId: string): Promise<boolean> {
    if (!isUuid(vocabularyId)) return false;
    return (await this.db.vocabulary.count({ where: { tenantId, id: vocabularyId } })) > 0;
  }

  /**
   * Images of a vocabulary ranked by one tag's stored score (best first, ties by image id), the
   * page after `after` (the last row of the previous page).
   */
  async rankByTag(
    tenantId: string,
    vocabularyId: string,
    tagId: string,
    f: RankFilter,
    page: { after: { score: number; imageId: string } | null; limit: number },
  ): Promise<{ rows: RankedImageRow[]; total: number }> {
    const min = f.minScore ?? null;
    const passed = f.passed ?? null;
    const ext = f.externalId ?? null;
    const afterScore = page.after?.score ?? null;
    const afterId = page.after?.imageId ?? null;
    const [rows, total] = await Promise.all([
      this.db.$queryRaw<RankedImageRow[]>`
        SELECT s.image_id AS "imageId", s.tag_id AS "tagId", s.score, s.logit, s.passed, s.revision
          FROM image_tag_scores s JOIN library_images i ON i.id = s.image_id AND i.tenant_id = s.tenant_id
         WHERE s.tenant_id = ${tenantId}::uuid AND s.vocabulary_id = ${vocabularyId}::uuid AND s.tag_id = ${tagId}::uuid
           AND (${min}::float8 IS NULL OR s.score >= ${min}::float8)
           AND (${passed}::bool IS NULL OR s.passed = ${passed}::bool)
           AND (${ext}::text IS NULL OR i.external_id = ${ext}::text)
           AND (${afterScore}::float8 IS NULL OR s.score < ${afterScore}::float8 OR (s.score = ${afterScore}::float8 AND s.image_id > ${afterId}::uuid))
         ORDER BY s.score DESC, s.image_id ASC
         LIMIT ${page.limit}`,
      this.db.$queryRaw<{ n: bigint }[]>`
        SELECT count(*) AS n
          FROM image_tag_scores s JOIN library_images i ON i.id = s.image_id AND i.tenant_id = s.tenant_id
         WHERE s.tenant_id = ${tenantId}::uuid AND s.vocabulary_id = ${vocabularyId}::uuid AND s.tag_id = ${tagId}::uuid
           AND (${min}::float8 IS NULL OR s.score >= ${min}::float8)
           AND (${passed}::bool IS NULL OR s.passed = ${passed}::bool)
           AND (${ext}::text IS NULL OR i.external_id = ${ext}::text)`,
    ]);
    return { rows, total: Number(total[0]?.n ?? 0) };
  }

  /** Images with a result for a vocabulary, newest first (ties by id), the page after `after`. */
  async newest(
    tenantId: string,
    vocabularyId: string,
    f: Pick<RankFilter, 'externalId'>,
    page: { after: { createdAt: Date; imageId: string } | null; limit: number },
  ): Promise<{ rows: ImageRow[]; total: number }> {
    const ext = f.externalId ?? null;
    const afterAt = page.after?.createdAt ?? null;
    const afterId = page.after?.imageId ?? null;
    const [ids, total] = await Promise.all([
      this.db.$queryRaw<{ id: string }[]>`
        SELECT i.id
          FROM library_images i JOIN image_results r ON r.image_id = i.id AND r.tenant_id = i.tenant_id
         WHERE i.tenant_id = ${tenantId}::uuid AND r.vocabulary_id = ${vocabularyId}::uuid
           AND (${ext}::text IS NULL OR i.external_id = ${ext}::text)
           AND (${afterAt}::timestamp IS NULL OR i.created_at < ${afterAt}::timestamp OR (i.created_at = ${afterAt}::timestamp AND i.id > ${afterId}::uuid))
         ORDER BY i.created_at DESC, i.id ASC
         LIMIT ${page.limit}`,
      this.db.$queryRaw<{ n: bigint }[]>`
        SELECT count(*) AS n
          FROM library_images i JOIN image_results r ON r.image_id = i.id AND r.tenant_id = i.tenant_id
         WHERE i.tenant_id = ${tenantId}::uuid AND r.vocabulary_id = ${vocabularyId}::uuid
           AND (${ext}::text IS NULL OR i.external_id = ${ext}::text)`,
    ]);
    const byId = new Map((await this.findByIds(tenantId, ids.map((r) => r.id))).map((r) => [r.id, r]));
    return { rows: ids.map((r) => byId.get(r.id)).filter((r): r is ImageRow => !!r), total: Number(total[0]?.n ?? 0) };
  }

  /** Deletes images (their results, scores and thumbnails go with them); answers the ids deleted. */
  async deleteByIds(tenantId: string, ids: readonly string[]): Promise<string[]> {
    const valid = ids.filter(isUuid);
    if (!valid.length) return [];
    const rows = await this.db.$queryRaw<{ id: string }[]>`
      DELETE FROM library_images WHERE tenant_id = ${tenantId}::uuid AND id = ANY(${valid}::uuid[]) RETURNING id`;
    return rows.map((r) => r.id);
  }

  /** Deletes images by the client's ids; answers those deleted. */
  async deleteByExternalIds(tenantId: string, externalIds: readonly string[]): Promise<{ id: string; externalId: string }[]> {
    if (!externalIds.length) return [];
    return this.db.$queryRaw<{ id: string; externalId: string }[]>`
      DELETE FROM library_images WHERE tenant_id = ${tenantId}::uuid AND external_id = ANY(${[...externalIds]}::text[])
      RETURNING id, external_id AS "externalId"`;
  }
}

/** Transactions, and statements on their own, over the library's tables; database errors leave as AppErrors. */
export class LibraryStore {
  private readonly direct: LibraryRepository;

  constructor(private readonly prisma: PrismaClient) {
    this.direct = new LibraryRepository(prisma);
  }

  run<T>(fn: (db: LibraryRepository) => Promise<T>): Promise<T> {
    return fn(this.direct).catch(translateDbError);
  }

  transaction<T>(fn: (tx: LibraryRepository) => Promise<T>): Promise<T> {
    return this.prisma.$transaction((tx) => fn(new LibraryRepository(tx)), { maxWait: 30_000, timeout: 60_000 }).catch(translateDbError);
  }
}
