import { randomUUID } from 'node:crypto';
import { AppError, ErrorCode, badInput, conflict, notFound } from '../../core/errors.ts';
import { chunks } from '../../core/chunks.ts';
import { isUuid } from '../../core/ids.ts';
import type { Page } from '../../core/paging.ts';
import type { VocabContext } from '../context.ts';
import { fillTemplate, templateDescriptions, TEMPLATE_ORDER } from '../generation/templates.ts';
import type { NewDescription } from '../repository/descriptions.ts';
import type { Repositories } from '../repository/store.ts';
import type { NewAlias, NewLocalizedName, TagChanges, TagRow } from '../repository/tags.ts';
import { toTagViews, type ItemResult, type TagView } from '../views.ts';
import { checkSearch, checkTagName, checkThreshold, type ItemProblem } from './names.ts';
import { checkTenant } from './scope.ts';
import { checkAliases, checkNames, prepareTag, type PreparedTag, type TagInput } from './tag-input.ts';

export type { TagInput };

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

export interface TagThresholdInput {
  tagId: string;
  /** A threshold override in (0, 1); null removes it. */
  threshold: number | null;
}

export interface SetThresholdsResult {
  results: ItemResult[];
  /** The vocabulary's revision after the call (unchanged when no threshold changed). */
  revision: number;
}

export interface TagListOptions {
  first: number;
  after?: string | null;
  /** Case-insensitive substring of the name or an alias. */
  search?: string | null;
  enabled?: boolean | null;
}

/** Tags per edit transaction of a bulk removal. */
const REMOVE_CHUNK = 5_000;

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
    const { settings, store } = this.ctx;
    if (!Array.isArray(inputs) || inputs.length === 0) throw badInput('give at least one tag', { field: 'tags' });
    if (inputs.length > settings.maxTagsPerRequest) {
      throw badInput(`at most ${settings.maxTagsPerRequest} tags per request`, { field: 'tags' });
    }
    const results: AddTagResult[] = inputs.map((_, index) => ({ index, ok: false }));
    const prepared: PreparedTag[] = [];
    const claimed = new Map<string, number>(); // key → item index, for names and aliases in this request
    inputs.forEach((input, index) => {
      const p = prepareTag(input, index, settings.maxDescriptionsPerTag);
      if ('problem' in p) {
        results[index]!.error = p.problem;
        return;
      }
      const clash = keysOf(p).find((k) => claimed.has(k));
      if (clash !== undefined) {
        const other = claimed.get(clash)!;
        results[index]!.error = { code: 'CONFLICT', message: `"${clash}" is also used by item ${other} of this request` };
        return;
      }
      for (const k of keysOf(p)) claimed.set(k, index);
      prepared.push(p);
    });

    if (prepared.length === 0) {
      // nothing to store: still answer NOT_FOUND for a vocabulary the tenant does not have
      const revision = await store.edit(tenantId, vocabularyId, async (_tx, r) => r);
      return { results, revision };
    }
    let rows: TagRow[] = [];
    const quotas = await this.ctx.quotas?.storedQuotas(tenantId);
    const revision = await store.edit(tenantId, vocabularyId, async (tx, revision) => {
      const taken = await takenKeys(tx, tenantId, vocabularyId, prepared.flatMap(keysOf));
      const accepted = prepared.filter((p) => {
        const clash = keysOf(p).find((k) => taken.has(k));
        if (clash === undefined) return true;
        results[p.index]!.error = { code: 'CONFLICT', message: taken.get(clash)! };
        return false;
      });
      if (accepted.length === 0) return revision;
      await quotas?.admitTags(accepted.length, () => tx.vocabularies.storedForQuota(tenantId, 'tags'));
      const next = revision + 1;
      const tagRows = accepted.map((p) => ({ id: randomUUID(), tenantId, vocabularyId, name: p.name, key: p.key, threshold: p.threshold, revision: next }));
      const descriptions: NewDescription[] = [];
      const aliases: NewAlias[] = [];
      const names: NewLocalizedName[] = [];
      accepted.forEach((p, i) => {
        const tagId = tagRows[i]!.id;
        const texts = p.descriptions ?? templateDescriptions(p.name, settings.descriptionsPerTag);
        const source = p.descriptions ? 'MANUAL' : 'TEMPLATE';
        texts.forEach((text, position) => descriptions.push({ tenantId, tagId, text, source, position }));
        for (const a of p.aliases) aliases.push({ tenantId, vocabularyId, tagId, name: a.name, key: a.key });
        for (const n of p.names) names.push({ tenantId, tagId, language: n.language, name: n.name });
      });
      await tx.tags.insert(tagRows);
      await tx.tags.insertAliases(aliases);
      await tx.tags.insertNames(names);
      await tx.descriptions.insertMany(descriptions);
      await tx.vocabularies.setRevision(tenantId, vocabularyId, next);
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
      return next;
    });
    const views = await this.views(rows);
    const byKey = new Map(rows.map((r, i) => [r.key, views[i]!]));
    for (const p of prepared) {
      const view = results[p.index]!.ok ? byKey.get(p.key) : undefined;
      if (view) results[p.index]!.tag = view;
    }
    return { results, revision };
  }

  /** For DataLoaders: the tenant's tags among `ids` (others are simply absent). */
  async getMany(tenantId: string, ids: readonly string[]): Promise<Map<string, TagView>> {
    checkTenant(tenantId);
    const valid = ids.filter(isUuid);
    if (valid.length === 0) return new Map();
    const views = await this.views(await this.ctx.store.run((db) => db.tags.rows(tenantId, valid)));
    return new Map(views.map((v) => [v.id, v]));
  }

  /** Tags by name (case-folded), then id. */
  async list(tenantId: string, vocabularyId: string, options: TagListOptions): Promise<Page<TagView>> {
    checkTenant(tenantId);
    const { store } = this.ctx;
    const search = options.search ? checkSearch(options.search) : undefined;
    if (search && !search.ok) throw badInput(search.problem.message, { field: 'search' });
    if (!isUuid(vocabularyId) || !(await store.run((db) => db.vocabularies.exists(tenantId, vocabularyId)))) throw notFound('vocabulary');
    const filter = {
      ...(search?.ok && search.key ? { search: search.key } : {}),
      ...(options.enabled !== undefined && options.enabled !== null ? { enabled: options.enabled } : {}),
    };
    return store.run((db) => db.tags.page(tenantId, vocabularyId, filter, options, (rows) => this.views(rows)));
  }

  /**
   * Changes one tag; omitted fields stay. Renaming re-renders its TEMPLATE descriptions with
   * the new name (LLM and manual ones stay: regenerate them if they should follow the name).
   */
  async update(tenantId: string, id: string, input: UpdateTagInput): Promise<TagView> {
    checkTenant(tenantId);
    if (!isUuid(id)) throw notFound('tag');
    const vocabularyId = await this.ctx.store.run((db) => db.tags.vocabularyOf(tenantId, id));
    if (!vocabularyId) throw notFound('tag');
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

    const row = await this.ctx.store.edit(tenantId, vocabularyId, async (tx, revision) => {
      const tag = await tx.tags.row(tenantId, id, vocabularyId);
      if (!tag) throw notFound('tag');
      const changes: TagChanges = {};
      const newKey = name?.ok ? name.key : tag.key;
      if (name?.ok && name.name !== tag.name) {
        if (name.key !== tag.key) {
          const clash = (await takenKeys(tx, tenantId, vocabularyId, [name.key], id)).get(name.key);
          if (clash) throw conflict(clash);
          // renaming to one of its own aliases: the alias becomes the name
          await tx.tags.deleteAlias(tenantId, id, name.key);
        }
        changes.name = name.name;
        changes.key = name.key;
        await rerenderTemplates(tx, tenantId, id, name.name);
      }
      if (threshold !== undefined && threshold !== tag.threshold) changes.threshold = threshold;
      if (input.enabled !== undefined && input.enabled !== null && input.enabled !== tag.enabled) changes.enabled = input.enabled;
      let changed = Object.keys(changes).length > 0;
      if (input.aliases !== undefined && input.aliases !== null) {
        const aliases = checkAliases(input.aliases, newKey);
        if ('problem' in aliases) throw new AppError(ErrorCode[aliases.problem.code], aliases.problem.message, { details: { field: 'aliases' } });
        const taken = await takenKeys(tx, tenantId, vocabularyId, aliases.list.map((a) => a.key), id);
        const clash = aliases.list.find((a) => taken.has(a.key));
        if (clash) throw conflict(taken.get(clash.key)!);
        const before = tag.aliases.map((a) => a.name).join('\n');
        const after = [...aliases.list].sort((a, b) => (a.key < b.key ? -1 : 1)).map((a) => a.name).join('\n');
        if (before !== after) {
          await tx.tags.replaceAliases(tenantId, id, aliases.list.map((a) => ({ tenantId, vocabularyId, tagId: id, name: a.name, key: a.key })));
          changed = true;
        }
      }
      if (names && !('problem' in names)) {
        const before = JSON.stringify(tag.names.map((n) => [n.language, n.name]));
        const after = JSON.stringify([...names.list].sort((a, b) => (a.language < b.language ? -1 : 1)).map((n) => [n.language, n.name]));
        if (before !== after) {
          await tx.tags.replaceNames(tenantId, id, names.list.map((n) => ({ tenantId, tagId: id, language: n.language, name: n.name })));
          changed = true;
        }
      }
      if (!changed) return tag;
      await tx.vocabularies.setRevision(tenantId, vocabularyId, revision + 1);
      return tx.tags.update(tenantId, id, changes, revision + 1);
    });
    return (await this.views([row]))[0]!;
  }

  /**
   * Sets the threshold overrides of several tags of one vocabulary (a calibration) in one edit:
   * one new revision for all of them, none when nothing changes. Each item succeeds or fails on
   * its own: NOT_FOUND for an id the vocabulary does not have (another tenant's or vocabulary's,
   * missing, malformed), BAD_USER_INPUT for a threshold outside (0, 1) or an id given twice.
   */
  async setThresholds(tenantId: string, vocabularyId: string, items: readonly TagThresholdInput[]): Promise<SetThresholdsResult> {
    checkTenant(tenantId);
    const { settings, store } = this.ctx;
    if (!isUuid(vocabularyId)) throw notFound('vocabulary');
    if (!Array.isArray(items)) throw badInput('thresholds must be a list', { field: 'thresholds' });
    if (items.length > settings.maxTagsPerRequest) throw badInput(`at most ${settings.maxTagsPerRequest} thresholds per request`, { field: 'thresholds' });
    const problems = new Map<number, ItemResult['error']>();
    const wanted: { id: string; threshold: number | null }[] = [];
    const seen = new Set<string>();
    items.forEach((item, i) => {
      if (!isUuid(item.tagId)) return problems.set(i, { code: 'NOT_FOUND', message: 'tag not found' });
      if (seen.has(item.tagId)) return problems.set(i, { code: 'BAD_USER_INPUT', message: 'this tag is given twice' });
      seen.add(item.tagId);
      if (item.threshold !== null) {
        const t = checkThreshold(item.threshold);
        if (!t.ok) return problems.set(i, t.problem);
      }
      wanted.push({ id: item.tagId, threshold: item.threshold });
    });
    const { found, revision } = await store.edit(tenantId, vocabularyId, async (tx, revision) => {
      const present = new Set(wanted.length ? await tx.tags.ids(tenantId, vocabularyId, wanted.map((w) => w.id)) : []);
      const changed = await tx.tags.setThresholds(tenantId, vocabularyId, wanted.filter((w) => present.has(w.id)), revision + 1);
      if (changed.length === 0) return { found: present, revision };
      await tx.vocabularies.setRevision(tenantId, vocabularyId, revision + 1);
      return { found: present, revision: revision + 1 };
    });
    const results = items.map((item, i): ItemResult => {
      const problem = problems.get(i) ?? (found.has(item.tagId) ? undefined : { code: 'NOT_FOUND', message: 'tag not found' });
      return problem ? { id: item.tagId, ok: false, error: problem } : { id: item.tagId, ok: true };
    });
    return { results, revision };
  }

  /** Removes tags; each id succeeds or fails on its own (NOT_FOUND for ids the tenant does not have). */
  async remove(tenantId: string, ids: readonly string[]): Promise<ItemResult[]> {
    checkTenant(tenantId);
    const { settings, store } = this.ctx;
    if (!Array.isArray(ids)) throw badInput('ids must be a list', { field: 'ids' });
    if (ids.length > settings.maxTagsPerRequest) throw badInput(`at most ${settings.maxTagsPerRequest} ids per request`, { field: 'ids' });
    const valid = [...new Set(ids.filter(isUuid))];
    const found = valid.length ? await store.run((db) => db.tags.vocabulariesOf(tenantId, valid)) : [];
    const byVocabulary = new Map<string, string[]>();
    for (const t of found) {
      const list = byVocabulary.get(t.vocabularyId);
      if (list) list.push(t.id);
      else byVocabulary.set(t.vocabularyId, [t.id]);
    }
    const done = new Set<string>();
    for (const [vocabularyId, tagIds] of byVocabulary) {
      for (const part of chunks(tagIds, REMOVE_CHUNK)) {
        await store.edit(tenantId, vocabularyId, async (tx, revision) => {
          // the tags may have gone since they were looked up
          const present = await tx.tags.ids(tenantId, vocabularyId, part);
          if (present.length === 0) return;
          await tx.jobs.detachTags(tenantId, present);
          await tx.tags.delete(tenantId, vocabularyId, present);
          await tx.vocabularies.setRevision(tenantId, vocabularyId, revision + 1);
          present.forEach((id) => done.add(id));
        });
      }
    }
    return ids.map((id) => (done.has(id) ? { id, ok: true } : { id, ok: false, error: { code: 'NOT_FOUND', message: 'tag not found' } }));
  }

  private views(rows: readonly TagRow[]): Promise<TagView[]> {
    return toTagViews(this.ctx.engine, this.ctx.settings.defaultThreshold, rows);
  }
}

const keysOf = (p: PreparedTag) => [p.key, ...p.aliases.map((a) => a.key)];

/** Keys already used in the vocabulary (by a tag or an alias), with the message to report. */
async function takenKeys(tx: Repositories, tenantId: string, vocabularyId: string, keys: readonly string[], exceptTagId?: string): Promise<Map<string, string>> {
  const taken = new Map<string, string>();
  if (keys.length === 0) return taken;
  for (const o of await tx.tags.keyOwners(tenantId, vocabularyId, keys)) {
    if (o.tagId === exceptTagId) continue;
    taken.set(o.key, o.alias === null ? `a tag named "${o.tagName}" already exists` : `"${o.alias}" is already an alias of the tag "${o.tagName}"`);
  }
  return taken;
}

/** TEMPLATE rows are a function of the name: after a rename they are written again, in place. */
async function rerenderTemplates(tx: Repositories, tenantId: string, tagId: string, name: string): Promise<void> {
  const rows = await tx.descriptions.templates(tenantId, tagId);
  if (rows.length === 0) return;
  await tx.descriptions.deleteOfTag(tenantId, tagId, ['TEMPLATE']);
  await tx.descriptions.insert(
    rows.map((r, i) => ({
      tenantId,
      tagId,
      text: fillTemplate(TEMPLATE_ORDER[Math.min(i, TEMPLATE_ORDER.length - 1)]!, name),
      source: 'TEMPLATE' as const,
      position: r.position,
      createdAt: r.createdAt,
    })),
  );
}
