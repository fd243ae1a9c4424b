import { randomUUID } from 'node:crypto';
import type { Prisma } from '../../generated/prisma/client.ts';
import { AppError, ErrorCode, badInput, conflict, notFound } from '../../core/errors.ts';
import { pageById, type Page } from '../../core/paging.ts';
import { TAG_INCLUDE, toTagViews, type ItemResult, type TagRow, type TagView, type VocabContext } from '../context.ts';
import { sha256Hex } from '../banks/embedding-cache.ts';
import {
  checkDescriptionText,
  checkLanguage,
  checkLocalizedName,
  checkTagName,
  checkThreshold,
  isUuid,
  nameKey,
  normalizeText,
  type ItemProblem,
} from './names.ts';
import {
  chunks,
  checkTenant,
  createManyInChunks,
  detachFromJobs,
  inTransaction,
  insertDescriptions,
  insertTags,
  lockVocabulary,
  run,
  setRevision,
  type DescriptionRow,
  type Tx,
} from '../repository/store.ts';
import { templateDescriptions, TEMPLATE_ORDER, fillTemplate } from '../generation/templates.ts';

export interface TagInput {
  name: string;
  /** Hand-written descriptions (source MANUAL); omitted or empty: template descriptions. */
  descriptions?: readonly string[] | null;
  /** Threshold override in (0, 1). */
  threshold?: number | null;
  aliases?: readonly string[] | null;
  names?: readonly { language: string; name: string }[] | null;
}

export interface AddTagResult {
  /** Position of the item in the request. */
  index: number;
  ok: boolean;
  tag?: TagView;
  error?: ItemProblem;
}

export interface AddTagsResult {
  results: AddTagResult[];
  /** The vocabulary's revision after the call (unchanged when nothing was added). */
  revision: number;
}

export interface UpdateTagInput {
  name?: string | null;
  /** A number sets the override, null removes it, undefined keeps it. */
  threshold?: number | null;
  enabled?: boolean | null;
  /** Replaces the aliases. */
  aliases?: readonly string[] | null;
  /** Replaces the names in other languages. */
  names?: readonly { language: string; name: string }[] | null;
}

export interface TagListOptions {
  first: number;
  after?: string | null;
  /** Case-insensitive substring of the name or an alias. */
  search?: string | null;
  enabled?: boolean | null;
}

interface Prepared {
  index: number;
  name: string;
  key: string;
  threshold: number | null;
  aliases: { name: string; key: string }[];
  names: { language: string; name: string }[];
  descriptions: string[] | null;
}

const INSERT_CHUNK = 2000;

/** Tags of a tenant's vocabularies. Every method is scoped by the tenant id it is given. */
export class TagService {
  constructor(private readonly ctx: VocabContext) {}

  /**
   * Adds tags in bulk. Each item succeeds or fails on its own (bad names, duplicates in the
   * request or the vocabulary, alias clashes); the accepted ones are stored in one transaction
   * with one new revision. Tags without descriptions get template descriptions at once.
   */
  async add(tenantId: string, vocabularyId: string, inputs: readonly TagInput[]): Promise<AddTagsResult> {
    checkTenant(tenantId);
    const { settings } = this.ctx;
    if (!Array.isArray(inputs) || inputs.length === 0) throw badInput('give at least one tag', { field: 'tags' });
    if (inputs.length > settings.maxTagsPerRequest) {
      throw badInput(`at most ${settings.maxTagsPerRequest} tags per request`, { field: 'tags' });
    }
    const results: AddTagResult[] = inputs.map((_, index) => ({ index, ok: false }));
    const prepared: Prepared[] = [];
    const claimed = new Map<string, number>(); // key → item index, for names and aliases in this request
    inputs.forEach((input, index) => {
      const p = this.prepare(input, index);
      if ('problem' in p) {
        results[index]!.error = p.problem;
        return;
      }
      const clash = [p.key, ...p.aliases.map((a) => a.key)].find((k) => claimed.has(k));
      if (clash !== undefined) {
        const other = claimed.get(clash)!;
        results[index]!.error = { code: 'CONFLICT', message: `"${clash}" is also used by item ${other} of this request` };
        return;
      }
      for (const k of [p.key, ...p.aliases.map((a) => a.key)]) claimed.set(k, index);
      prepared.push(p);
    });

    const { prisma } = this.ctx;
    let revision = 0;
    let rows: TagRow[] = [];
    if (prepared.length === 0) {
      // nothing to store: still answer NOT_FOUND for a vocabulary the tenant does not have
      revision = await inTransaction(prisma, (tx) => lockVocabulary(tx, tenantId, vocabularyId));
      return { results, revision };
    }
    const perTag = settings.descriptionsPerTag;
    await inTransaction(prisma, async (tx) => {
      revision = await lockVocabulary(tx, tenantId, vocabularyId);
      const keys = prepared.flatMap((p) => [p.key, ...p.aliases.map((a) => a.key)]);
      const taken = await takenKeys(tx, vocabularyId, keys);
      const accepted = prepared.filter((p) => {
        const clash = [p.key, ...p.aliases.map((a) => a.key)].find((k) => taken.has(k));
        if (clash === undefined) return true;
        results[p.index]!.error = { code: 'CONFLICT', message: taken.get(clash)! };
        return false;
      });
      if (accepted.length === 0) return;
      const next = revision + 1;
      const tagRows = accepted.map((p) => ({ id: randomUUID(), tenantId, vocabularyId, name: p.name, key: p.key, threshold: p.threshold, revision: next }));
      const descriptions: DescriptionRow[] = [];
      const aliases: Prisma.TagAliasCreateManyInput[] = [];
      const names: Prisma.TagNameCreateManyInput[] = [];
      accepted.forEach((p, i) => {
        const tagId = tagRows[i]!.id;
        const texts = p.descriptions ?? templateDescriptions(p.name, perTag);
        const source = p.descriptions ? 'MANUAL' : 'TEMPLATE';
        texts.forEach((text, position) => descriptions.push({ tenantId, tagId, text, textHash: sha256Hex(text), source, position }));
        for (const a of p.aliases) aliases.push({ tenantId, vocabularyId, tagId, name: a.name, key: a.key });
        for (const n of p.names) names.push({ tenantId, tagId, language: n.language, name: n.name });
      });
      await insertTags(tx, tagRows);
      await createManyInChunks(aliases, INSERT_CHUNK, (data) => tx.tagAlias.createMany({ data }));
      await createManyInChunks(names, INSERT_CHUNK, (data) => tx.tagName.createMany({ data }));
      await insertDescriptions(tx, descriptions);
      await setRevision(tx, vocabularyId, next);
      revision = next;
      const now = new Date();
      rows = accepted.map((p, i) => ({
        ...tagRows[i]!,
        createdAt: now,
        updatedAt: now,
        enabled: true,
        builtinIndex: null,
        useBuiltinDescriptions: true,
        descriptionState: 'READY',
        descriptionError: null,
        aliases: p.aliases.map((a) => ({ name: a.name })),
        names: p.names,
      }));
      accepted.forEach((p) => (results[p.index]!.ok = true));
    });
    const views = await toTagViews(this.ctx, rows);
    const byIndex = new Map(rows.map((r, i) => [r.key, views[i]!]));
    for (const p of prepared) {
      const view = results[p.index]!.ok ? byIndex.get(p.key) : undefined;
      if (view) results[p.index]!.tag = view;
    }
    return { results, revision };
  }

  private prepare(input: TagInput, index: number): Prepared | { problem: ItemProblem } {
    if (!input || typeof input !== 'object') return { problem: { code: 'BAD_USER_INPUT', message: 'a tag must be an object' } };
    const name = checkTagName(input.name);
    if (!name.ok) return { problem: name.problem };
    let threshold: number | null = null;
    if (input.threshold !== undefined && input.threshold !== null) {
      const t = checkThreshold(input.threshold);
      if (!t.ok) return { problem: t.problem };
      threshold = t.threshold;
    }
    const aliases = checkAliases(input.aliases, name.key);
    if ('problem' in aliases) return aliases;
    const names = checkNames(input.names);
    if ('problem' in names) return names;
    let descriptions: string[] | null = null;
    if (input.descriptions && input.descriptions.length > 0) {
      if (input.descriptions.length > this.ctx.settings.maxDescriptionsPerTag) {
        return { problem: { code: 'BAD_USER_INPUT', message: `at most ${this.ctx.settings.maxDescriptionsPerTag} descriptions per tag` } };
      }
      descriptions = [];
      for (const raw of input.descriptions) {
        const d = checkDescriptionText(raw);
        if (!d.ok) return { problem: d.problem };
        descriptions.push(d.text);
      }
    }
    return { index, name: name.name, key: name.key, threshold, aliases: aliases.list, names: names.list, descriptions };
  }

  async get(tenantId: string, id: string): Promise<TagView> {
    checkTenant(tenantId);
    if (!isUuid(id)) throw notFound('tag');
    const row = await run(this.ctx.prisma.tag.findFirst({ where: { id, tenantId }, include: TAG_INCLUDE }));
    if (!row) throw notFound('tag');
    return (await toTagViews(this.ctx, [row]))[0]!;
  }

  /** For DataLoaders: the tenant's tags among `ids` (others are simply absent). */
  async getMany(tenantId: string, ids: readonly string[]): Promise<Map<string, TagView>> {
    checkTenant(tenantId);
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return new Map();
    const rows = await run(this.ctx.prisma.tag.findMany({ where: { tenantId, id: { in: valid } }, include: TAG_INCLUDE }));
    const views = await toTagViews(this.ctx, rows);
    return new Map(views.map((v) => [v.id, v]));
  }

  /** The tag a name or alias resolves to (normalised, case-insensitive), or null. */
  async resolve(tenantId: string, vocabularyId: string, name: string): Promise<TagView | null> {
    checkTenant(tenantId);
    if (!isUuid(vocabularyId) || typeof name !== 'string') return null;
    const key = nameKey(normalizeText(name));
    const { prisma } = this.ctx;
    const row =
      (await run(prisma.tag.findFirst({ where: { tenantId, vocabularyId, key }, include: TAG_INCLUDE }))) ??
      (await run(prisma.tag.findFirst({ where: { tenantId, vocabularyId, aliases: { some: { key } } }, include: TAG_INCLUDE })));
    return row ? (await toTagViews(this.ctx, [row]))[0]! : null;
  }

  /** Tags by name (case-folded), then id. */
  async list(tenantId: string, vocabularyId: string, options: TagListOptions): Promise<Page<TagView>> {
    checkTenant(tenantId);
    const { prisma } = this.ctx;
    if (!isUuid(vocabularyId) || !(await run(prisma.vocabulary.findFirst({ where: { id: vocabularyId, tenantId }, select: { id: true } })))) {
      throw notFound('vocabulary');
    }
    const search = options.search ? nameKey(normalizeText(options.search)) : '';
    const where: Prisma.TagWhereInput = {
      tenantId,
      vocabularyId,
      ...(options.enabled !== undefined && options.enabled !== null ? { enabled: options.enabled } : {}),
      ...(search ? { OR: [{ key: { contains: search } }, { aliases: { some: { key: { contains: search } } } }] } : {}),
    };
    return run(
      pageById(
        options,
        {
          exists: (id) => prisma.tag.findFirst({ where: { id, tenantId, vocabularyId }, select: { id: true } }),
          rows: (window) => prisma.tag.findMany({ where, include: TAG_INCLUDE, orderBy: [{ key: 'asc' }, { id: 'asc' }], ...window }),
          count: () => prisma.tag.count({ where }),
        },
        (rows) => toTagViews(this.ctx, rows),
      ),
    );
  }

  /**
   * Changes one tag; omitted fields stay. Renaming re-renders its TEMPLATE descriptions with
   * the new name (LLM and manual ones stay: regenerate them if they should follow the name).
   */
  async update(tenantId: string, id: string, input: UpdateTagInput): Promise<TagView> {
    checkTenant(tenantId);
    const vocabularyId = await this.vocabularyOf(tenantId, id);
    const name = input.name !== undefined && input.name !== null ? checkTagName(input.name) : undefined;
    if (name && !name.ok) throw badInput(name.problem.message, { field: 'name' });
    let threshold: number | null | undefined;
    if (input.threshold === null) threshold = null;
    else if (input.threshold !== undefined) {
      const t = checkThreshold(input.threshold);
      if (!t.ok) throw badInput(t.problem.message, { field: 'threshold' });
      threshold = t.threshold;
    }
    const names = input.names !== undefined && input.names !== null ? checkNames(input.names) : undefined;
    if (names && 'problem' in names) throw badInput(names.problem.message, { field: 'names' });

    const row = await inTransaction(this.ctx.prisma, async (tx) => {
      const revision = await lockVocabulary(tx, tenantId, vocabularyId);
      const tag = await tx.tag.findFirst({ where: { id, tenantId, vocabularyId }, include: TAG_INCLUDE });
      if (!tag) throw notFound('tag');
      const next = revision + 1;
      const data: Prisma.TagUpdateInput = {};
      const newKey = name?.ok ? name.key : tag.key;
      if (name?.ok && name.name !== tag.name) {
        if (name.key !== tag.key) {
          const clash = (await takenKeys(tx, vocabularyId, [name.key], id)).get(name.key);
          if (clash) throw conflict(clash);
          // renaming to one of its own aliases: the alias becomes the name
          await tx.tagAlias.deleteMany({ where: { tagId: id, tenantId, key: name.key } });
        }
        data.name = name.name;
        data.key = name.key;
        await rerenderTemplates(tx, tenantId, id, name.name);
      }
      if (threshold !== undefined && threshold !== tag.threshold) data.threshold = threshold;
      if (input.enabled !== undefined && input.enabled !== null && input.enabled !== tag.enabled) data.enabled = input.enabled;
      let changed = Object.keys(data).length > 0;
      if (input.aliases !== undefined && input.aliases !== null) {
        const aliases = checkAliases(input.aliases, newKey);
        if ('problem' in aliases) throw new AppError(ErrorCode[aliases.problem.code], aliases.problem.message, { details: { field: 'aliases' } });
        const taken = await takenKeys(tx, vocabularyId, aliases.list.map((a) => a.key), id);
        const clash = aliases.list.find((a) => taken.has(a.key));
        if (clash) throw conflict(taken.get(clash.key)!);
        const before = tag.aliases.map((a) => a.name).join('\n');
        const after = [...aliases.list].sort((a, b) => (a.key < b.key ? -1 : 1)).map((a) => a.name).join('\n');
        if (before !== after) {
          await tx.tagAlias.deleteMany({ where: { tagId: id, tenantId } });
          await tx.tagAlias.createMany({ data: aliases.list.map((a) => ({ tenantId, vocabularyId, tagId: id, name: a.name, key: a.key })) });
          changed = true;
        }
      }
      if (names && !('problem' in names)) {
        const before = JSON.stringify(tag.names.map((n) => [n.language, n.name]));
        const after = JSON.stringify([...names.list].sort((a, b) => (a.language < b.language ? -1 : 1)).map((n) => [n.language, n.name]));
        if (before !== after) {
          await tx.tagName.deleteMany({ where: { tagId: id, tenantId } });
          await tx.tagName.createMany({ data: names.list.map((n) => ({ tenantId, tagId: id, language: n.language, name: n.name })) });
          changed = true;
        }
      }
      if (!changed) return tag;
      await setRevision(tx, vocabularyId, next);
      return tx.tag.update({ where: { id }, data: { ...data, revision: next }, include: TAG_INCLUDE });
    });
    return (await toTagViews(this.ctx, [row]))[0]!;
  }

  /** Enables or disables tags in bulk; each id succeeds or fails on its own. */
  async setEnabled(tenantId: string, ids: readonly string[], enabled: boolean): Promise<ItemResult[]> {
    return this.bulk(tenantId, ids, async (tx, vocabularyId, tagIds, next) => {
      await tx.tag.updateMany({ where: { tenantId, vocabularyId, id: { in: tagIds }, enabled: !enabled }, data: { enabled, revision: next } });
    });
  }

  /** Removes tags; each id succeeds or fails on its own (NOT_FOUND for ids the tenant does not have). */
  async remove(tenantId: string, ids: readonly string[]): Promise<ItemResult[]> {
    return this.bulk(tenantId, ids, async (tx, vocabularyId, tagIds) => {
      await detachFromJobs(tx, tenantId, tagIds);
      await tx.tag.deleteMany({ where: { tenantId, vocabularyId, id: { in: tagIds } } });
    });
  }

  private async bulk(
    tenantId: string,
    ids: readonly string[],
    apply: (tx: Tx, vocabularyId: string, tagIds: string[], next: number) => Promise<void>,
  ): Promise<ItemResult[]> {
    checkTenant(tenantId);
    if (!Array.isArray(ids)) throw badInput('ids must be a list', { field: 'ids' });
    if (ids.length > this.ctx.settings.maxTagsPerRequest) throw badInput(`at most ${this.ctx.settings.maxTagsPerRequest} ids per request`, { field: 'ids' });
    const valid = [...new Set(ids.filter(isUuid))];
    const found = valid.length
      ? await run(this.ctx.prisma.tag.findMany({ where: { tenantId, id: { in: valid } }, select: { id: true, vocabularyId: true } }))
      : [];
    const byVocabulary = new Map<string, string[]>();
    for (const t of found) byVocabulary.set(t.vocabularyId, [...(byVocabulary.get(t.vocabularyId) ?? []), t.id]);
    const done = new Set<string>();
    for (const [vocabularyId, tagIds] of byVocabulary) {
      for (const part of chunks(tagIds, 5000)) {
        await inTransaction(this.ctx.prisma, async (tx) => {
          const revision = await lockVocabulary(tx, tenantId, vocabularyId);
          // the tags may have gone since they were looked up
          const still = await tx.tag.findMany({ where: { tenantId, vocabularyId, id: { in: part } }, select: { id: true } });
          if (still.length === 0) return;
          const present = still.map((t) => t.id);
          await apply(tx, vocabularyId, present, revision + 1);
          await setRevision(tx, vocabularyId, revision + 1);
          present.forEach((id) => done.add(id));
        });
      }
    }
    return ids.map((id) => (done.has(id) ? { id, ok: true } : { id, ok: false, error: { code: 'NOT_FOUND', message: 'tag not found' } }));
  }

  private async vocabularyOf(tenantId: string, tagId: string): Promise<string> {
    if (!isUuid(tagId)) throw notFound('tag');
    const t = await run(this.ctx.prisma.tag.findFirst({ where: { id: tagId, tenantId }, select: { vocabularyId: true } }));
    if (!t) throw notFound('tag');
    return t.vocabularyId;
  }
}

/** Keys already used in the vocabulary (by a tag or an alias), with the message to report. */
async function takenKeys(tx: Tx, vocabularyId: string, keys: readonly string[], exceptTagId?: string): Promise<Map<string, string>> {
  const taken = new Map<string, string>();
  if (keys.length === 0) return taken;
  for (const part of chunks([...new Set(keys)], 5000)) {
    const tags = await tx.tag.findMany({ where: { vocabularyId, key: { in: part } }, select: { id: true, name: true, key: true } });
    for (const t of tags) if (t.id !== exceptTagId) taken.set(t.key, `a tag named "${t.name}" already exists`);
    const aliases = await tx.tagAlias.findMany({
      where: { vocabularyId, key: { in: part } },
      select: { name: true, key: true, tagId: true, tag: { select: { name: true } } },
    });
    for (const a of aliases) if (a.tagId !== exceptTagId) taken.set(a.key, `"${a.name}" is already an alias of the tag "${a.tag.name}"`);
  }
  return taken;
}

function checkAliases(raw: readonly string[] | null | undefined, ownKey: string): { list: { name: string; key: string }[] } | { problem: ItemProblem } {
  const list: { name: string; key: string }[] = [];
  if (!raw) return { list };
  if (!Array.isArray(raw)) return { problem: { code: 'BAD_USER_INPUT', message: 'aliases must be a list' } };
  if (raw.length > 100) return { problem: { code: 'BAD_USER_INPUT', message: 'at most 100 aliases per tag' } };
  const seen = new Set([ownKey]);
  for (const a of raw) {
    const c = checkTagName(a, 'alias');
    if (!c.ok) return { problem: c.problem };
    if (seen.has(c.key)) continue; // the tag's own name or a repeat: nothing to add
    seen.add(c.key);
    list.push({ name: c.name, key: c.key });
  }
  return { list };
}

function checkNames(raw: readonly { language: string; name: string }[] | null | undefined): { list: { language: string; name: string }[] } | { problem: ItemProblem } {
  const list: { language: string; name: string }[] = [];
  if (!raw) return { list };
  if (!Array.isArray(raw)) return { problem: { code: 'BAD_USER_INPUT', message: 'names must be a list' } };
  const languages = new Set<string>();
  for (const entry of raw) {
    const l = checkLanguage(entry?.language);
    if (!l.ok) return { problem: l.problem };
    const n = checkLocalizedName(entry?.name);
    if (!n.ok) return { problem: n.problem };
    if (languages.has(l.language)) return { problem: { code: 'BAD_USER_INPUT', message: `two names in the language "${l.language}"` } };
    languages.add(l.language);
    list.push({ language: l.language, name: n.name });
  }
  return { list };
}

/** TEMPLATE rows are a function of the name: after a rename they are written again, in place. */
async function rerenderTemplates(tx: Tx, tenantId: string, tagId: string, name: string): Promise<void> {
  const rows = await tx.tagDescription.findMany({ where: { tagId, tenantId, source: 'TEMPLATE' }, orderBy: [{ position: 'asc' }, { id: 'asc' }] });
  if (rows.length === 0) return;
  await tx.tagDescription.deleteMany({ where: { tagId, tenantId, source: 'TEMPLATE' } });
  await tx.tagDescription.createMany({
    data: rows.map((r, i) => {
      const text = fillTemplate(TEMPLATE_ORDER[Math.min(i, TEMPLATE_ORDER.length - 1)]!, name);
      return { tenantId, tagId, text, textHash: sha256Hex(text), source: 'TEMPLATE', position: r.position, createdAt: r.createdAt };
    }),
  });
}
