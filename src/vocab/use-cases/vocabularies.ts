import { randomUUID } from 'node:crypto';
import { badInput, notFound } from '../../core/errors.ts';
import { isUuid } from '../../core/ids.ts';
import type { Page } from '../../core/paging.ts';
import type { BuiltinVocabulary } from '../../inference/index.ts';
import type { VocabContext } from '../context.ts';
import type { SeedTag, Vocabulary } from '../repository/vocabularies.ts';
import { checkVocabularyName, nameKey, normalizeText } from './names.ts';
import { checkTenant } from './scope.ts';

export type { Vocabulary };

export interface VocabularyStats {
  tags: number;
  enabledTags: number;
  /** PENDING or GENERATING: scored with their template descriptions meanwhile. */
  pendingTags: number;
  failedTags: number;
}

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
    const quotas = await this.ctx.quotas?.storedQuotas(tenantId);
    return this.ctx.store.transaction(async (tx) => {
      await quotas?.admitVocabularies(1, () => tx.vocabularies.storedForQuota(tenantId, 'vocabularies'));
      if (builtin) await quotas?.admitTags(builtin.tags.length, () => tx.vocabularies.storedForQuota(tenantId, 'tags'));
      const vocabulary = await tx.vocabularies.create(tenantId, checked.name, !!builtin);
      if (builtin) await tx.vocabularies.insertSeed(tenantId, vocabulary.id, seedTags(builtin));
      return vocabulary;
    });
  }

  async get(tenantId: string, id: string): Promise<Vocabulary> {
    checkTenant(tenantId);
    if (!isUuid(id)) throw notFound('vocabulary');
    const v = await this.ctx.store.run((db) => db.vocabularies.byId(tenantId, id));
    if (!v) throw notFound('vocabulary');
    return v;
  }

  /**
   * Ids of the tags an edit touched after revision `since` (added, renamed, re-described,
   * thresholds or enabled changed): what stored results of `since` must be scored again for.
   * Removed tags are not among them (they no longer exist).
   */
  async tagsChangedSince(tenantId: string, vocabularyId: string, since: number): Promise<Set<string>> {
    checkTenant(tenantId);
    if (!isUuid(vocabularyId)) throw notFound('vocabulary');
    return new Set(await this.ctx.store.run((db) => db.tags.changedSince(tenantId, vocabularyId, since)));
  }

  /** For DataLoaders: the tenant's vocabularies among `ids` (others are simply absent). */
  async getMany(tenantId: string, ids: readonly string[]): Promise<Map<string, Vocabulary>> {
    checkTenant(tenantId);
    const valid = ids.filter(isUuid);
    const rows = valid.length ? await this.ctx.store.run((db) => db.vocabularies.byIds(tenantId, valid)) : [];
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** By name, then id. */
  async list(tenantId: string, page: { first: number; after?: string | null }): Promise<Page<Vocabulary>> {
    checkTenant(tenantId);
    return this.ctx.store.run((db) => db.vocabularies.page(tenantId, page));
  }

  async rename(tenantId: string, id: string, name: string): Promise<Vocabulary> {
    checkTenant(tenantId);
    const checked = checkVocabularyName(name);
    if (!checked.ok) throw badInput(checked.problem.message, { field: 'name' });
    return this.ctx.store.edit(tenantId, id, async (tx, revision) => {
      const current = (await tx.vocabularies.byId(tenantId, id))!; // locked: it exists
      if (current.name === checked.name) return current;
      return tx.vocabularies.rename(tenantId, id, checked.name, revision + 1);
    });
  }

  /** Deletes the vocabulary with its tags, descriptions and jobs; returns its id. */
  async delete(tenantId: string, id: string): Promise<string> {
    checkTenant(tenantId);
    if (!isUuid(id)) throw notFound('vocabulary');
    if (!(await this.ctx.store.run((db) => db.vocabularies.delete(tenantId, id)))) throw notFound('vocabulary');
    this.onDelete(id);
    return id;
  }

  async stats(tenantId: string, id: string): Promise<VocabularyStats> {
    await this.get(tenantId, id);
    const groups = await this.ctx.store.run((db) => db.vocabularies.tagCounts(tenantId, id));
    const stats: VocabularyStats = { tags: 0, enabledTags: 0, pendingTags: 0, failedTags: 0 };
    for (const g of groups) {
      stats.tags += g.count;
      if (g.enabled) stats.enabledTags += g.count;
      if (g.state === 'PENDING' || g.state === 'GENERATING') stats.pendingTags += g.count;
      if (g.state === 'FAILED') stats.failedTags += g.count;
    }
    return stats;
  }
}

/** The pack's tags as seed rows; the pack's list is trusted, and a repeated name keeps its first row. */
function seedTags(builtin: BuiltinVocabulary): SeedTag[] {
  const seen = new Set<string>();
  const tags: SeedTag[] = [];
  builtin.tags.forEach((t, i) => {
    const name = normalizeText(t.name);
    const key = nameKey(name);
    if (!name || seen.has(key)) return;
    seen.add(key);
    tags.push({ id: randomUUID(), name, key, builtinIndex: i, nameZh: (t.nameZh && normalizeText(t.nameZh)) || undefined });
  });
  return tags;
}
