import type { Vocabulary } from '../../generated/prisma/client.ts';
import { notFound } from '../../core/errors.ts';
import { isUuid } from '../../core/ids.ts';
import { chunks } from '../../core/chunks.ts';
import { pageById, type Page } from '../../core/paging.ts';
import type { Db } from './transactions.ts';

export type { Vocabulary };

/** A built-in tag as seeded: its pack row and normalised names. */
export interface SeedTag {
  id: string;
  name: string;
  key: string;
  builtinIndex: number;
  /** The pack's Chinese name, normalised, when it has one. */
  nameZh: string | undefined;
}

/** Rows per seeding statement (one unnest() each: 4,585 built-in tags in one round trip). */
const SEED_CHUNK = 5_000;

/** The `vocabularies` table; every query is scoped by the tenant. */
/** A vocabulary's revision, as an edit set it. */
export interface RevisionChange {
  readonly tenantId: string;
  readonly vocabularyId: string;
  readonly revision: number;
}

export class VocabularyRepository {
  /** `onRevision`: told of every revision set (the store reports them once their transaction commits). */
  constructor(
    private readonly db: Db,
    private readonly onRevision?: (change: RevisionChange) => void,
  ) {}

  /**
   * Locks the tenant's vocabulary row for the rest of the transaction (edits of one vocabulary
   * serialise) and returns its revision. Another tenant's vocabulary, a missing one and a
   * malformed id all answer NOT_FOUND.
   */
  async lock(tenantId: string, vocabularyId: string): Promise<number> {
    if (!isUuid(vocabularyId) || !isUuid(tenantId)) throw notFound('vocabulary');
    const rows = await this.db.$queryRaw<{ revision: number }[]>`
      SELECT revision FROM vocabularies WHERE id = ${vocabularyId}::uuid AND tenant_id = ${tenantId}::uuid FOR UPDATE`;
    if (rows.length === 0) throw notFound('vocabulary');
    return rows[0]!.revision;
  }

  /**
   * How many vocabularies or tags the tenant stores, counted under a lock that serialises, until
   * the transaction ends, the tenant's edits that check a stored quota: two concurrent edits
   * cannot both pass on the same count and overshoot it together.
   */
  async storedForQuota(tenantId: string, what: 'vocabularies' | 'tags'): Promise<number> {
    await this.db.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`omnitag-quota:${tenantId}`}, 0))`;
    return what === 'tags' ? this.db.tag.count({ where: { tenantId } }) : this.db.vocabulary.count({ where: { tenantId } });
  }

  async setRevision(tenantId: string, vocabularyId: string, revision: number): Promise<void> {
    await this.db.vocabulary.update({ where: { tenantId_id: { tenantId, id: vocabularyId } }, data: { revision } });
    this.onRevision?.({ tenantId, vocabularyId, revision });
  }

  /** NOT_FOUND when the tenant does not exist. */
  async create(tenantId: string, name: string, fromBuiltin: boolean): Promise<Vocabulary> {
    try {
      return await this.db.vocabulary.create({ data: { tenantId, name, fromBuiltin } });
    } catch (e) {
      if ((e as { code?: string }).code === 'P2003' || /foreign key/i.test(String((e as Error).message))) throw notFound('tenant');
      throw e;
    }
  }

  /** Built-in tags at revision 1, with their Chinese names: one statement per table and chunk. */
  async insertSeed(tenantId: string, vocabularyId: string, tags: readonly SeedTag[]): Promise<void> {
    for (const part of chunks(tags, SEED_CHUNK)) {
      await this.db.$executeRaw`
        INSERT INTO tags (id, tenant_id, vocabulary_id, name, key, builtin_index, revision, created_at, updated_at)
        SELECT u.id, ${tenantId}::uuid, ${vocabularyId}::uuid, u.name, u.key, u.idx, 1, now(), now()
          FROM unnest(${part.map((t) => t.id)}::uuid[], ${part.map((t) => t.name)}::text[], ${part.map((t) => t.key)}::text[], ${part.map((t) => t.builtinIndex)}::int[])
            AS u(id, name, key, idx)`;
    }
    const zh = tags.filter((t) => t.nameZh);
    for (const part of chunks(zh, SEED_CHUNK)) {
      await this.db.$executeRaw`
        INSERT INTO tag_names (id, tenant_id, tag_id, language, name)
        SELECT gen_random_uuid(), ${tenantId}::uuid, u.tag_id, 'zh', u.name
          FROM unnest(${part.map((t) => t.id)}::uuid[], ${part.map((t) => t.nameZh!)}::text[]) AS u(tag_id, name)`;
    }
  }

  byId(tenantId: string, id: string): Promise<Vocabulary | null> {
    return this.db.vocabulary.findFirst({ where: { id, tenantId } });
  }

  byIds(tenantId: string, ids: readonly string[]): Promise<Vocabulary[]> {
    return this.db.vocabulary.findMany({ where: { tenantId, id: { in: [...ids] } } });
  }

  async exists(tenantId: string, id: string): Promise<boolean> {
    return (await this.db.vocabulary.findFirst({ where: { id, tenantId }, select: { id: true } })) !== null;
  }

  /** By name, then id. */
  page(tenantId: string, page: { first: number; after?: string | null }): Promise<Page<Vocabulary>> {
    const { db } = this;
    return pageById(page, {
      exists: (id) => db.vocabulary.findFirst({ where: { id, tenantId }, select: { id: true } }),
      rows: (window) => db.vocabulary.findMany({ where: { tenantId }, orderBy: [{ name: 'asc' }, { id: 'asc' }], ...window }),
      count: () => db.vocabulary.count({ where: { tenantId } }),
    });
  }

  rename(tenantId: string, id: string, name: string, revision: number): Promise<Vocabulary> {
    return this.db.vocabulary.update({ where: { tenantId_id: { tenantId, id } }, data: { name, revision } });
  }

  /** Deletes it with its tags, descriptions and jobs (cascades); false when the tenant has none with this id. */
  async delete(tenantId: string, id: string): Promise<boolean> {
    const { count } = await this.db.vocabulary.deleteMany({ where: { id, tenantId } });
    return count > 0;
  }

  /** Tag counts by enabled flag and description state. */
  async tagCounts(tenantId: string, vocabularyId: string) {
    const groups = await this.db.tag.groupBy({ by: ['enabled', 'descriptionState'], where: { tenantId, vocabularyId }, _count: { _all: true } });
    return groups.map((g) => ({ enabled: g.enabled, state: g.descriptionState, count: g._count._all }));
  }
}
