import { badInput, notFound } from '../../core/errors.ts';
import { isUuid } from '../../core/ids.ts';
import type { BuiltinVocabulary } from '../../inference/index.ts';
import type { VocabContext } from '../context.ts';
import type { TagDescription } from '../repository/descriptions.ts';
import type { TagRef } from '../repository/tags.ts';
import type { DescriptionView } from '../views.ts';
import { checkDescriptionText } from './names.ts';
import { checkTenant } from './scope.ts';

/**
 * A tag's descriptions. Built-in tags are described by the pack's own embeddings: they are
 * listed as BUILTIN entries without text and are never copied into the database.
 * (Regenerating descriptions goes through DescriptionJobService.)
 */
export class DescriptionService {
  constructor(private readonly ctx: VocabContext) {}

  /** For DataLoaders: descriptions of the tenant's tags among `tagIds` (others are absent). */
  async listForTags(tenantId: string, tagIds: readonly string[]): Promise<Map<string, DescriptionView[]>> {
    checkTenant(tenantId);
    const ids = [...new Set(tagIds.filter(isUuid))];
    const out = new Map<string, DescriptionView[]>();
    if (ids.length === 0) return out;
    const [tags, rows] = await this.ctx.store.run((db) => Promise.all([db.tags.refs(tenantId, ids), db.descriptions.ofTags(tenantId, ids)]));
    const builtin = tags.some((t) => t.builtinIndex !== null && t.useBuiltinDescriptions) ? await this.ctx.engine.builtinVocabulary() : undefined;
    for (const t of tags) out.set(t.id, builtinEntries(t, t.createdAt, builtin));
    for (const r of rows) out.get(r.tagId)?.push(toView(r));
    return out;
  }

  /**
   * Replaces every description of a tag with hand-written ones; a built-in tag stops using the
   * pack's. The tag leaves its unfinished generation job, so a running one cannot overwrite them.
   */
  async replace(tenantId: string, tagId: string, texts: readonly string[]): Promise<DescriptionView[]> {
    const clean = this.checkTexts(texts);
    checkTenant(tenantId);
    if (!isUuid(tagId)) throw notFound('tag');
    const { store } = this.ctx;
    const tag = await store.run((db) => db.tags.ref(tenantId, tagId));
    if (!tag) throw notFound('tag');
    const rows = await store.edit(tenantId, tag.vocabularyId, async (tx, revision) => {
      if (!(await tx.tags.ref(tenantId, tagId, tag.vocabularyId))) throw notFound('tag');
      await tx.jobs.detachTags(tenantId, [tagId]);
      await tx.descriptions.deleteOfTag(tenantId, tagId);
      const now = new Date();
      await tx.descriptions.insert(clean.map((text, position) => ({ tenantId, tagId, text, source: 'MANUAL', position, createdAt: now })));
      const stored = await tx.descriptions.ofTag(tenantId, tagId);
      await tx.tags.stamp(tenantId, tagId, { useBuiltinDescriptions: false, descriptionState: 'READY', descriptionError: null }, revision + 1);
      await tx.vocabularies.setRevision(tenantId, tag.vocabularyId, revision + 1);
      return stored;
    });
    return rows.map(toView);
  }

  private checkTexts(texts: readonly string[]): string[] {
    const max = this.ctx.settings.maxDescriptionsPerTag;
    if (!Array.isArray(texts) || texts.length === 0) throw badInput('give at least 1 description', { field: 'descriptions' });
    if (texts.length > max) throw badInput(`a tag may have at most ${max} descriptions`, { field: 'descriptions' });
    return texts.map((t, index) => {
      const c = checkDescriptionText(t);
      if (!c.ok) throw badInput(`description ${index}: ${c.problem.message}`, { field: 'descriptions', index });
      return c.text;
    });
  }
}

function builtinEntries(tag: TagRef, createdAt: Date, builtin: BuiltinVocabulary | undefined): DescriptionView[] {
  if (tag.builtinIndex === null || !tag.useBuiltinDescriptions || !builtin) return [];
  const count = builtin.tags[tag.builtinIndex]?.descriptionCount ?? 0;
  return Array.from({ length: count }, (_, d) => ({
    id: `builtin:${tag.id}:${d}`,
    tagId: tag.id,
    text: null,
    source: 'BUILTIN' as const,
    position: -count + d,
    generatorModel: null,
    generatorPrompt: null,
    createdAt,
  }));
}

function toView(r: TagDescription): DescriptionView {
  return {
    id: r.id,
    tagId: r.tagId,
    text: r.text,
    source: r.source,
    position: r.position,
    generatorModel: r.generatorModel,
    generatorPrompt: r.generatorPrompt,
    createdAt: r.createdAt,
  };
}
