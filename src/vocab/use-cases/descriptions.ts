import type { TagDescription } from '../../generated/prisma/client.ts';
import { badInput, notFound } from '../../core/errors.ts';
import type { BuiltinVocabulary } from '../../inference/index.ts';
import type { DescriptionView, ItemResult, VocabContext } from '../context.ts';
import { sha256Hex } from '../banks/embedding-cache.ts';
import { checkDescriptionText, isUuid } from './names.ts';
import { checkTenant, detachFromJobs, inTransaction, lockVocabulary, run, setRevision, type Tx } from '../repository/store.ts';

interface TagRef {
  id: string;
  vocabularyId: string;
  builtinIndex: number | null;
  useBuiltinDescriptions: boolean;
}

const TAG_REF = { id: true, vocabularyId: true, builtinIndex: true, useBuiltinDescriptions: true } as const;

/**
 * A tag's descriptions: admins list, add, edit and delete them. Built-in tags are described
 * by the pack's own embeddings: they are listed as BUILTIN entries without text and are never
 * copied into the database. (Regenerating descriptions goes through DescriptionJobService.)
 */
export class DescriptionService {
  constructor(private readonly ctx: VocabContext) {}

  async list(tenantId: string, tagId: string): Promise<DescriptionView[]> {
    return (await this.listForTags(tenantId, [tagId])).get(tagId) ?? throwNotFound();
  }

  /** For DataLoaders: descriptions of the tenant's tags among `tagIds` (others are absent). */
  async listForTags(tenantId: string, tagIds: readonly string[]): Promise<Map<string, DescriptionView[]>> {
    checkTenant(tenantId);
    const ids = [...new Set(tagIds.filter(isUuid))];
    const out = new Map<string, DescriptionView[]>();
    if (ids.length === 0) return out;
    const { prisma } = this.ctx;
    const [tags, rows] = await run(
      Promise.all([
        prisma.tag.findMany({ where: { tenantId, id: { in: ids } }, select: { ...TAG_REF, createdAt: true } }),
        prisma.tagDescription.findMany({ where: { tenantId, tagId: { in: ids } }, orderBy: [{ position: 'asc' }, { createdAt: 'asc' }, { id: 'asc' }] }),
      ]),
    );
    const builtin = tags.some((t) => t.builtinIndex !== null && t.useBuiltinDescriptions) ? await this.ctx.engine.builtinVocabulary() : undefined;
    for (const t of tags) out.set(t.id, builtinEntries(t, t.createdAt, builtin));
    for (const r of rows) out.get(r.tagId)?.push(toView(r));
    return out;
  }

  /** Appends hand-written descriptions (source MANUAL). */
  async add(tenantId: string, tagId: string, texts: readonly string[]): Promise<DescriptionView[]> {
    const clean = this.checkTexts(texts);
    const tag = await this.tagRef(tenantId, tagId);
    const created = await this.edit(tenantId, tag.vocabularyId, tagId, async (tx) => {
      const count = await tx.tagDescription.count({ where: { tagId, tenantId } });
      if (count + clean.length > this.ctx.settings.maxDescriptionsPerTag) {
        throw badInput(`a tag may have at most ${this.ctx.settings.maxDescriptionsPerTag} descriptions`, { field: 'descriptions' });
      }
      const last = await tx.tagDescription.aggregate({ where: { tagId, tenantId }, _max: { position: true } });
      const start = (last._max.position ?? -1) + 1;
      const now = new Date();
      await tx.tagDescription.createMany({
        data: clean.map((text, i) => ({ tenantId, tagId, text, textHash: sha256Hex(text), source: 'MANUAL', position: start + i, createdAt: now })),
      });
      return tx.tagDescription.findMany({ where: { tagId, tenantId, position: { gte: start } }, orderBy: { position: 'asc' } });
    });
    return created.map(toView);
  }

  /** Replaces every description of a tag with hand-written ones (built-in ones included). */
  async replace(tenantId: string, tagId: string, texts: readonly string[]): Promise<DescriptionView[]> {
    const clean = this.checkTexts(texts);
    const tag = await this.tagRef(tenantId, tagId);
    const rows = await this.edit(tenantId, tag.vocabularyId, tagId, async (tx) => {
      await detachFromJobs(tx, tenantId, [tagId]); // a running generation must not overwrite them
      await tx.tagDescription.deleteMany({ where: { tagId, tenantId } });
      const now = new Date();
      await tx.tagDescription.createMany({
        data: clean.map((text, position) => ({ tenantId, tagId, text, textHash: sha256Hex(text), source: 'MANUAL', position, createdAt: now })),
      });
      return tx.tagDescription.findMany({ where: { tagId, tenantId }, orderBy: { position: 'asc' } });
    }, { useBuiltinDescriptions: false, descriptionState: 'READY', descriptionError: null });
    return rows.map(toView);
  }

  /** Edits one stored description; it becomes MANUAL (an admin wrote it now). */
  async update(tenantId: string, descriptionId: string, text: string): Promise<DescriptionView> {
    checkTenant(tenantId);
    const checked = checkDescriptionText(text);
    if (!checked.ok) throw badInput(checked.problem.message, { field: 'text' });
    if (typeof descriptionId === 'string' && descriptionId.startsWith('builtin:')) {
      throw badInput('built-in descriptions exist only as embeddings and cannot be edited; replace the tag\'s descriptions instead');
    }
    if (!isUuid(descriptionId)) throw notFound('description');
    const row = await run(this.ctx.prisma.tagDescription.findFirst({ where: { id: descriptionId, tenantId }, select: { tagId: true, tag: { select: { vocabularyId: true } } } }));
    if (!row) throw notFound('description');
    const updated = await this.edit(tenantId, row.tag.vocabularyId, row.tagId, async (tx) => {
      const found = await tx.tagDescription.findFirst({ where: { id: descriptionId, tenantId } });
      if (!found) throw notFound('description');
      return tx.tagDescription.update({
        where: { id: descriptionId },
        data: { text: checked.text, textHash: sha256Hex(checked.text), source: 'MANUAL', generatorModel: null, generatorPrompt: null },
      });
    });
    return toView(updated);
  }

  /**
   * Deletes stored descriptions; each id succeeds or fails on its own. A tag keeps at least one
   * description (built-in ones count), so deleting its last one fails for that id.
   */
  async remove(tenantId: string, descriptionIds: readonly string[]): Promise<ItemResult[]> {
    checkTenant(tenantId);
    const results = new Map<string, ItemResult>();
    const ids = [...new Set(descriptionIds.filter(isUuid))];
    const rows = ids.length
      ? await run(this.ctx.prisma.tagDescription.findMany({ where: { tenantId, id: { in: ids } }, select: { id: true, tagId: true, tag: { select: { vocabularyId: true } } } }))
      : [];
    const byTag = new Map<string, { vocabularyId: string; ids: string[] }>();
    for (const r of rows) {
      const entry = byTag.get(r.tagId) ?? { vocabularyId: r.tag.vocabularyId, ids: [] };
      entry.ids.push(r.id);
      byTag.set(r.tagId, entry);
    }
    for (const [tagId, { vocabularyId, ids: forTag }] of byTag) {
      await this.edit(tenantId, vocabularyId, tagId, async (tx, tag) => {
        const total = await tx.tagDescription.count({ where: { tagId, tenantId } });
        const keepsBuiltin = tag.builtinIndex !== null && tag.useBuiltinDescriptions;
        let removable = forTag;
        if (!keepsBuiltin && total - forTag.length < 1) {
          // keep the last one (the highest position among those asked)
          const last = await tx.tagDescription.findFirst({ where: { id: { in: forTag } }, orderBy: [{ position: 'desc' }, { id: 'desc' }], select: { id: true } });
          removable = forTag.filter((id) => id !== last!.id);
          results.set(last!.id, { id: last!.id, ok: false, error: { code: 'BAD_USER_INPUT', message: 'a tag needs at least one description' } });
        }
        await tx.tagDescription.deleteMany({ where: { tenantId, tagId, id: { in: removable } } });
        removable.forEach((id) => results.set(id, { id, ok: true }));
        return removable.length > 0;
      });
    }
    return descriptionIds.map((id) => results.get(id) ?? { id, ok: false, error: { code: 'NOT_FOUND', message: 'description not found' } });
  }

  /**
   * A built-in tag goes back to the pack's own description embeddings: generated (LLM and
   * template) rows are removed, hand-written ones stay.
   */
  async restoreBuiltin(tenantId: string, tagId: string): Promise<DescriptionView[]> {
    const tag = await this.tagRef(tenantId, tagId);
    if (tag.builtinIndex === null) throw badInput('only built-in tags have built-in descriptions');
    await this.edit(tenantId, tag.vocabularyId, tagId, async (tx) => {
      await detachFromJobs(tx, tenantId, [tagId]);
      await tx.tagDescription.deleteMany({ where: { tagId, tenantId, source: { in: ['LLM', 'TEMPLATE'] } } });
    }, { useBuiltinDescriptions: true, descriptionState: 'READY', descriptionError: null });
    return this.list(tenantId, tagId);
  }

  private checkTexts(texts: readonly string[]): string[] {
    if (!Array.isArray(texts) || texts.length === 0) throw badInput('give at least 1 description', { field: 'descriptions' });
    if (texts.length > this.ctx.settings.maxDescriptionsPerTag) {
      throw badInput(`a tag may have at most ${this.ctx.settings.maxDescriptionsPerTag} descriptions`, { field: 'descriptions' });
    }
    return texts.map((t, index) => {
      const c = checkDescriptionText(t);
      if (!c.ok) throw badInput(`description ${index}: ${c.problem.message}`, { field: 'descriptions', index });
      return c.text;
    });
  }

  private async tagRef(tenantId: string, tagId: string): Promise<TagRef> {
    checkTenant(tenantId);
    if (!isUuid(tagId)) throw notFound('tag');
    const tag = await run(this.ctx.prisma.tag.findFirst({ where: { id: tagId, tenantId }, select: TAG_REF }));
    if (!tag) throw notFound('tag');
    return tag;
  }

  /** One edit of one tag's descriptions: lock, change, mark the tag and the vocabulary with a new revision. */
  private async edit<T>(
    tenantId: string,
    vocabularyId: string,
    tagId: string,
    fn: (tx: Tx, tag: TagRef) => Promise<T>,
    tagData: { useBuiltinDescriptions?: boolean; descriptionState?: 'READY'; descriptionError?: null } = {},
  ): Promise<T> {
    const result = await inTransaction(this.ctx.prisma, async (tx) => {
      const revision = await lockVocabulary(tx, tenantId, vocabularyId);
      const tag = await tx.tag.findFirst({ where: { id: tagId, tenantId, vocabularyId }, select: TAG_REF });
      if (!tag) throw notFound('tag');
      const value = await fn(tx, tag);
      if (value === false) return value;
      await tx.tag.update({ where: { id: tagId }, data: { ...tagData, revision: revision + 1 } });
      await setRevision(tx, vocabularyId, revision + 1);
      return value;
    });
    return result;
  }
}

function throwNotFound(): never {
  throw notFound('tag');
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
