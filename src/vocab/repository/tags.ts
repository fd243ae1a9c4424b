import type { DescriptionState, Prisma } from '../../generated/prisma/client.ts';
import { chunks } from '../../core/chunks.ts';
import { pageById, type Page } from '../../core/paging.ts';
import type { Db } from './transactions.ts';

/** A tag with its aliases (by key) and names in other languages (by language). */
export interface TagRow {
  id: string;
  vocabularyId: string;
  name: string;
  key: string;
  threshold: number | null;
  enabled: boolean;
  builtinIndex: number | null;
  useBuiltinDescriptions: boolean;
  descriptionState: DescriptionState;
  descriptionError: string | null;
  revision: number;
  createdAt: Date;
  updatedAt: Date;
  aliases: { name: string }[];
  names: { language: string; name: string }[];
}

/** What edits of a tag's descriptions need to know about it. */
export interface TagRef {
  id: string;
  vocabularyId: string;
  name: string;
  builtinIndex: number | null;
  useBuiltinDescriptions: boolean;
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

export interface NewAlias {
  tenantId: string;
  vocabularyId: string;
  tagId: string;
  name: string;
  key: string;
}

export interface NewLocalizedName {
  tenantId: string;
  tagId: string;
  language: string;
  name: string;
}

/** Fields an update may change; omitted ones stay. */
export interface TagChanges {
  name?: string;
  key?: string;
  threshold?: number | null;
  enabled?: boolean;
  descriptionState?: DescriptionState;
  descriptionError?: string | null;
  useBuiltinDescriptions?: boolean;
}

/** Who uses a name key in a vocabulary: a tag by its name, or a tag through one of its aliases. */
export interface KeyOwner {
  key: string;
  tagId: string;
  tagName: string;
  /** The alias as written, when the key is an alias. */
  alias: string | null;
}

export interface TagFilter {
  /** Substring of the case-folded name or of an alias key, matched literally (`%` and `_` too). */
  search?: string;
  enabled?: boolean;
}

/** Prisma `include` that gives a TagRow. */
const TAG_INCLUDE = {
  aliases: { select: { name: true }, orderBy: { key: 'asc' } },
  names: { select: { language: true, name: true }, orderBy: { language: 'asc' } },
} as const;

const TAG_REF = { id: true, vocabularyId: true, name: true, builtinIndex: true, useBuiltinDescriptions: true } as const;

/** Rows per bulk insert statement (unnest of column arrays: one round trip per chunk). */
const INSERT_CHUNK = 10_000;
/** Rows per createMany (PostgreSQL takes at most 65,535 bind parameters). */
const CREATE_MANY_CHUNK = 2_000;
/** Ids or keys per `IN (…)` / `ANY(…)` list. */
const ID_CHUNK = 5_000;

/**
 * Prisma's `contains` becomes `LIKE '%' || $1 || '%'` and passes `%` and `_` on as wildcards
 * (a search for "_" would match every tag): they and the escape character itself are escaped
 * with a backslash, PostgreSQL's default LIKE escape.
 */
export const likeLiteral = (text: string): string => text.replace(/[\\%_]/g, '\\$&');

/** The `tags`, `tag_aliases` and `tag_names` tables; every query is scoped by the tenant. */
export class TagRepository {
  constructor(private readonly db: Db) {}

  async insert(rows: readonly NewTagRow[]): Promise<void> {
    for (const part of chunks(rows, INSERT_CHUNK)) {
      await this.db.$executeRaw`
        INSERT INTO tags (id, tenant_id, vocabulary_id, name, key, threshold, revision, created_at, updated_at)
        SELECT u.id, u.tenant_id, u.vocabulary_id, u.name, u.key, u.threshold, u.revision, now(), now()
          FROM unnest(${part.map((r) => r.id)}::uuid[], ${part.map((r) => r.tenantId)}::uuid[], ${part.map((r) => r.vocabularyId)}::uuid[],
                      ${part.map((r) => r.name)}::text[], ${part.map((r) => r.key)}::text[], ${part.map((r) => r.threshold)}::float8[],
                      ${part.map((r) => r.revision)}::int[])
            AS u(id, tenant_id, vocabulary_id, name, key, threshold, revision)`;
    }
  }

  async insertAliases(rows: readonly NewAlias[]): Promise<void> {
    for (const data of chunks(rows, CREATE_MANY_CHUNK)) await this.db.tagAlias.createMany({ data });
  }

  async insertNames(rows: readonly NewLocalizedName[]): Promise<void> {
    for (const data of chunks(rows, CREATE_MANY_CHUNK)) await this.db.tagName.createMany({ data });
  }

  /** Tags and aliases of the vocabulary that use any of `keys`. */
  async keyOwners(tenantId: string, vocabularyId: string, keys: readonly string[]): Promise<KeyOwner[]> {
    const owners: KeyOwner[] = [];
    for (const part of chunks([...new Set(keys)], ID_CHUNK)) {
      const tags = await this.db.tag.findMany({ where: { tenantId, vocabularyId, key: { in: part } }, select: { id: true, name: true, key: true } });
      for (const t of tags) owners.push({ key: t.key, tagId: t.id, tagName: t.name, alias: null });
      const aliases = await this.db.tagAlias.findMany({
        where: { tenantId, vocabularyId, key: { in: part } },
        select: { name: true, key: true, tagId: true, tag: { select: { name: true } } },
      });
      for (const a of aliases) owners.push({ key: a.key, tagId: a.tagId, tagName: a.tag.name, alias: a.name });
    }
    return owners;
  }

  row(tenantId: string, id: string, vocabularyId?: string): Promise<TagRow | null> {
    return this.db.tag.findFirst({ where: { id, tenantId, ...(vocabularyId ? { vocabularyId } : {}) }, include: TAG_INCLUDE });
  }

  rows(tenantId: string, ids: readonly string[]): Promise<TagRow[]> {
    return this.db.tag.findMany({ where: { tenantId, id: { in: [...ids] } }, include: TAG_INCLUDE });
  }

  ref(tenantId: string, id: string, vocabularyId?: string): Promise<TagRef | null> {
    return this.db.tag.findFirst({ where: { id, tenantId, ...(vocabularyId ? { vocabularyId } : {}) }, select: TAG_REF });
  }

  refs(tenantId: string, ids: readonly string[]): Promise<(TagRef & { createdAt: Date })[]> {
    return this.db.tag.findMany({ where: { tenantId, id: { in: [...ids] } }, select: { ...TAG_REF, createdAt: true } });
  }

  /** Tags by case-folded name, then id. */
  page<N extends { id: string }>(
    tenantId: string,
    vocabularyId: string,
    filter: TagFilter,
    page: { first: number; after?: string | null },
    toNodes: (rows: TagRow[]) => Promise<N[]>,
  ): Promise<Page<N>> {
    const { db } = this;
    const where: Prisma.TagWhereInput = {
      tenantId,
      vocabularyId,
      ...(filter.enabled !== undefined ? { enabled: filter.enabled } : {}),
      ...(filter.search ? { OR: [{ key: { contains: likeLiteral(filter.search) } }, { aliases: { some: { key: { contains: likeLiteral(filter.search) } } } }] } : {}),
    };
    return pageById(
      page,
      {
        exists: (id) => db.tag.findFirst({ where: { id, tenantId, vocabularyId }, select: { id: true } }),
        rows: (window) => db.tag.findMany({ where, include: TAG_INCLUDE, orderBy: [{ key: 'asc' }, { id: 'asc' }], ...window }),
        count: () => db.tag.count({ where }),
      },
      toNodes,
    );
  }

  async vocabularyOf(tenantId: string, id: string): Promise<string | undefined> {
    const t = await this.db.tag.findFirst({ where: { id, tenantId }, select: { vocabularyId: true } });
    return t?.vocabularyId;
  }

  /** The vocabulary of each of the tenant's tags among `ids`. */
  vocabulariesOf(tenantId: string, ids: readonly string[]): Promise<{ id: string; vocabularyId: string }[]> {
    return this.db.tag.findMany({ where: { tenantId, id: { in: [...ids] } }, select: { id: true, vocabularyId: true } });
  }

  /** Ids of the vocabulary's tags, all of them or those among `only`. */
  async ids(tenantId: string, vocabularyId: string, only?: readonly string[]): Promise<string[]> {
    const rows = await this.db.tag.findMany({ where: { tenantId, vocabularyId, ...(only ? { id: { in: [...only] } } : {}) }, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** Ids of the vocabulary's tags stamped with a revision newer than `since` (index tags(tenant_id, vocabulary_id, revision)). */
  async changedSince(tenantId: string, vocabularyId: string, since: number): Promise<string[]> {
    const rows = await this.db.tag.findMany({ where: { tenantId, vocabularyId, revision: { gt: since } }, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** Changes one tag and stamps it with `revision`. */
  update(tenantId: string, id: string, changes: TagChanges, revision: number): Promise<TagRow> {
    return this.db.tag.update({ where: { tenantId_id: { tenantId, id } }, data: { ...changes, revision }, include: TAG_INCLUDE });
  }

  /**
   * Sets threshold overrides (null removes one) of tags of one vocabulary, in one statement per
   * chunk, stamping the tags whose threshold changes with `revision`; returns their ids.
   */
  async setThresholds(tenantId: string, vocabularyId: string, items: readonly { id: string; threshold: number | null }[], revision: number): Promise<string[]> {
    const changed: string[] = [];
    for (const part of chunks(items, INSERT_CHUNK)) {
      const rows = await this.db.$queryRaw<Array<{ id: string }>>`
        UPDATE tags t SET threshold = u.threshold, revision = ${revision}, updated_at = now()
          FROM unnest(${part.map((i) => i.id)}::uuid[], ${part.map((i) => i.threshold)}::float8[]) AS u(id, threshold)
         WHERE t.tenant_id = ${tenantId}::uuid AND t.vocabulary_id = ${vocabularyId}::uuid AND t.id = u.id
           AND t.threshold IS DISTINCT FROM u.threshold
        RETURNING t.id`;
      changed.push(...rows.map((r) => r.id));
    }
    return changed;
  }

  /** Like `update` for callers that need nothing back. */
  async stamp(tenantId: string, id: string, changes: TagChanges, revision: number): Promise<void> {
    await this.db.tag.update({ where: { tenantId_id: { tenantId, id } }, data: { ...changes, revision }, select: { id: true } });
  }

  /** Sets the description state without a new revision (the worker's GENERATING / back to PENDING). */
  async setState(tenantId: string, id: string, descriptionState: DescriptionState): Promise<void> {
    await this.db.tag.updateMany({ where: { tenantId, id }, data: { descriptionState } });
  }

  /** Marks tags PENDING (generation queued) with `revision`. */
  async markPending(tenantId: string, ids: readonly string[], revision: number): Promise<void> {
    for (const part of chunks(ids, ID_CHUNK)) {
      await this.db.tag.updateMany({ where: { tenantId, id: { in: part } }, data: { descriptionState: 'PENDING', descriptionError: null, revision } });
    }
  }

  /** Tags still waiting for generation go back to READY with what they have (their job was cancelled). */
  async markReadyIfWaiting(tenantId: string, ids: readonly string[], revision: number): Promise<void> {
    await this.db.tag.updateMany({
      where: { tenantId, id: { in: [...ids] }, descriptionState: { in: ['PENDING', 'GENERATING'] } },
      data: { descriptionState: 'READY', descriptionError: null, revision },
    });
  }

  async deleteAlias(tenantId: string, tagId: string, key: string): Promise<void> {
    await this.db.tagAlias.deleteMany({ where: { tagId, tenantId, key } });
  }

  async replaceAliases(tenantId: string, tagId: string, aliases: readonly NewAlias[]): Promise<void> {
    await this.db.tagAlias.deleteMany({ where: { tagId, tenantId } });
    await this.db.tagAlias.createMany({ data: [...aliases] });
  }

  async replaceNames(tenantId: string, tagId: string, names: readonly NewLocalizedName[]): Promise<void> {
    await this.db.tagName.deleteMany({ where: { tagId, tenantId } });
    await this.db.tagName.createMany({ data: [...names] });
  }

  async delete(tenantId: string, vocabularyId: string, ids: readonly string[]): Promise<void> {
    await this.db.tag.deleteMany({ where: { tenantId, vocabularyId, id: { in: [...ids] } } });
  }
}
