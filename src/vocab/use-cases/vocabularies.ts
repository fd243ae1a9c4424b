import { randomUUID } from 'node:crypto';
import type { Vocabulary } from '../../generated/prisma/client.ts';
import { badInput, notFound } from '../../core/errors.ts';
import { pageById, type Page } from '../../core/paging.ts';
import type { VocabContext } from '../context.ts';
import { checkVocabularyName, isUuid, nameKey, normalizeText } from './names.ts';
import { checkTenant, inTransaction, lockVocabulary, run, setRevision } from '../repository/store.ts';

export type { Vocabulary };

export interface VocabularyStats {
  tags: number;
  enabledTags: number;
  /** PENDING or GENERATING: scored with their template descriptions meanwhile. */
  pendingTags: number;
  failedTags: number;
}

const SEED_CHUNK = 5000;

/** A tenant's vocabularies. Every method is scoped by the tenant id it is given. */
export class VocabularyService {
  constructor(
    private readonly ctx: VocabContext,
    /** Called when a vocabulary is deleted. */
    private readonly onDelete: (vocabularyId: string) => void,
  ) {}

  /**
   * Creates a vocabulary, empty or seeded with the pack's built-in tags (names, Chinese names;
   * thresholds and description embeddings are read from the pack when compiling, so nothing
   * per description is stored and no LLM is called).
   */
  async create(tenantId: string, input: { name: string; fromBuiltin?: boolean | null }): Promise<Vocabulary> {
    checkTenant(tenantId);
    const checked = checkVocabularyName(input.name);
    if (!checked.ok) throw badInput(checked.problem.message, { field: 'name' });
    const builtin = input.fromBuiltin ? await this.ctx.engine.builtinVocabulary() : undefined;
    const { prisma } = this.ctx;
    try {
      return await inTransaction(prisma, async (tx) => {
        const vocabulary = await tx.vocabulary.create({ data: { tenantId, name: checked.name, fromBuiltin: !!builtin } });
        if (!builtin) return vocabulary;
        const seen = new Set<string>();
        const tags = { id: [] as string[], name: [] as string[], key: [] as string[], index: [] as number[] };
        const zh = { tagId: [] as string[], name: [] as string[] };
        builtin.tags.forEach((t, i) => {
          const name = normalizeText(t.name);
          const key = nameKey(name);
          if (!name || seen.has(key)) return; // the pack's list is trusted; a repeated name keeps its first row
          seen.add(key);
          const id = randomUUID();
          tags.id.push(id);
          tags.name.push(name);
          tags.key.push(key);
          tags.index.push(i);
          const nameZh = t.nameZh && normalizeText(t.nameZh);
          if (nameZh) {
            zh.tagId.push(id);
            zh.name.push(nameZh);
          }
        });
        // one statement per table: 4,585 rows through unnest() instead of row-by-row parameters
        for (let start = 0; start < tags.id.length; start += SEED_CHUNK) {
          const end = start + SEED_CHUNK;
          await tx.$executeRaw`
            INSERT INTO tags (id, tenant_id, vocabulary_id, name, key, builtin_index, revision, created_at, updated_at)
            SELECT u.id, ${tenantId}::uuid, ${vocabulary.id}::uuid, u.name, u.key, u.idx, 1, now(), now()
              FROM unnest(${tags.id.slice(start, end)}::uuid[], ${tags.name.slice(start, end)}::text[], ${tags.key.slice(start, end)}::text[], ${tags.index.slice(start, end)}::int[])
                AS u(id, name, key, idx)`;
        }
        for (let start = 0; start < zh.tagId.length; start += SEED_CHUNK) {
          const end = start + SEED_CHUNK;
          await tx.$executeRaw`
            INSERT INTO tag_names (id, tenant_id, tag_id, language, name)
            SELECT gen_random_uuid(), ${tenantId}::uuid, u.tag_id, 'zh', u.name
              FROM unnest(${zh.tagId.slice(start, end)}::uuid[], ${zh.name.slice(start, end)}::text[]) AS u(tag_id, name)`;
        }
        return vocabulary;
      });
    } catch (e) {
      if ((e as { code?: string }).code === 'P2003' || /foreign key/i.test(String((e as Error).message))) throw notFound('tenant');
      throw e;
    }
  }

  async get(tenantId: string, id: string): Promise<Vocabulary> {
    checkTenant(tenantId);
    if (!isUuid(id)) throw notFound('vocabulary');
    const v = await run(this.ctx.prisma.vocabulary.findFirst({ where: { id, tenantId } }));
    if (!v) throw notFound('vocabulary');
    return v;
  }

  /** For DataLoaders: the tenant's vocabularies among `ids` (others are simply absent). */
  async getMany(tenantId: string, ids: readonly string[]): Promise<Map<string, Vocabulary>> {
    checkTenant(tenantId);
    const valid = ids.filter(isUuid);
    const rows = valid.length ? await run(this.ctx.prisma.vocabulary.findMany({ where: { tenantId, id: { in: valid } } })) : [];
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** By name, then id. */
  async list(tenantId: string, page: { first: number; after?: string | null }): Promise<Page<Vocabulary>> {
    checkTenant(tenantId);
    const { prisma } = this.ctx;
    return run(
      pageById(page, {
        exists: (id) => prisma.vocabulary.findFirst({ where: { id, tenantId }, select: { id: true } }),
        rows: (window) => prisma.vocabulary.findMany({ where: { tenantId }, orderBy: [{ name: 'asc' }, { id: 'asc' }], ...window }),
        count: () => prisma.vocabulary.count({ where: { tenantId } }),
      }),
    );
  }

  async rename(tenantId: string, id: string, name: string): Promise<Vocabulary> {
    checkTenant(tenantId);
    const checked = checkVocabularyName(name);
    if (!checked.ok) throw badInput(checked.problem.message, { field: 'name' });
    const v = await inTransaction(this.ctx.prisma, async (tx) => {
      const revision = await lockVocabulary(tx, tenantId, id);
      const current = await tx.vocabulary.findUniqueOrThrow({ where: { id } });
      if (current.name === checked.name) return current;
      return tx.vocabulary.update({ where: { id }, data: { name: checked.name, revision: revision + 1 } });
    });
    return v;
  }

  /** Deletes the vocabulary with its tags, descriptions and jobs; returns its id. */
  async delete(tenantId: string, id: string): Promise<string> {
    checkTenant(tenantId);
    if (!isUuid(id)) throw notFound('vocabulary');
    const { count } = await run(this.ctx.prisma.vocabulary.deleteMany({ where: { id, tenantId } }));
    if (count === 0) throw notFound('vocabulary');
    this.onDelete(id);
    return id;
  }

  async stats(tenantId: string, id: string): Promise<VocabularyStats> {
    await this.get(tenantId, id);
    const groups = await run(
      this.ctx.prisma.tag.groupBy({ by: ['enabled', 'descriptionState'], where: { tenantId, vocabularyId: id }, _count: { _all: true } }),
    );
    const stats: VocabularyStats = { tags: 0, enabledTags: 0, pendingTags: 0, failedTags: 0 };
    for (const g of groups) {
      const n = g._count._all;
      stats.tags += n;
      if (g.enabled) stats.enabledTags += n;
      if (g.descriptionState === 'PENDING' || g.descriptionState === 'GENERATING') stats.pendingTags += n;
      if (g.descriptionState === 'FAILED') stats.failedTags += n;
    }
    return stats;
  }

  /** Bumps the revision without other changes (tests, cache invalidation by operators). */
  async touch(tenantId: string, id: string): Promise<number> {
    return inTransaction(this.ctx.prisma, async (tx) => {
      const revision = (await lockVocabulary(tx, tenantId, id)) + 1;
      await setRevision(tx, id, revision);
      return revision;
    });
  }
}

