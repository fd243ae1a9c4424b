import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tagEmbeddings } from '../../src/inference/index.ts';
import type { VocabularyServices } from '../../src/vocab/index.ts';
import { descriptionsOf, setupVocabEnv, tagNamed, type VocabTestEnv } from './helpers.ts';

let env: VocabTestEnv;
let s: VocabularyServices;

beforeAll(async () => {
  env = await setupVocabEnv();
  s = await env.services();
});
afterAll(() => env?.close());

describe('vocabularies', () => {
  it('creates, renames, lists and deletes, scoped by tenant', async () => {
    const v = await s.vocabularies.create(env.tenantA, { name: '  Animals \u00a0 of  the World ' });
    expect(v).toMatchObject({ name: 'Animals of the World', revision: 1, fromBuiltin: false, tenantId: env.tenantA });
    await expect(s.vocabularies.create(env.tenantA, { name: 'Animals of the World' })).rejects.toMatchObject({ code: 'CONFLICT' });
    // the same name in another tenant is a different vocabulary
    const other = await s.vocabularies.create(env.tenantB, { name: 'Animals of the World' });
    expect(other.id).not.toBe(v.id);

    const renamed = await s.vocabularies.rename(env.tenantA, v.id, 'Zoo');
    expect(renamed).toMatchObject({ name: 'Zoo', revision: 2 });
    // renaming to the same name is not an edit
    expect((await s.vocabularies.rename(env.tenantA, v.id, 'Zoo')).revision).toBe(2);

    const pageA = await s.vocabularies.list(env.tenantA, { first: 10 });
    expect(pageA.nodes.map((x) => x.id)).toEqual([v.id]);
    expect(pageA.totalCount).toBe(1);

    // another tenant's id behaves exactly like a missing one
    for (const call of [
      () => s.vocabularies.get(env.tenantB, v.id),
      () => s.vocabularies.rename(env.tenantB, v.id, 'Mine'),
      () => s.vocabularies.delete(env.tenantB, v.id),
      () => s.vocabularies.get(env.tenantA, '00000000-0000-4000-8000-000000000000'),
      () => s.vocabularies.get(env.tenantA, 'not-a-uuid'),
      () => s.labelBanks.forVocabulary(env.tenantB, v.id),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'vocabulary not found' });
    }
    expect((await s.vocabularies.get(env.tenantA, v.id)).name).toBe('Zoo');

    expect(await s.vocabularies.delete(env.tenantA, v.id)).toBe(v.id);
    await expect(s.vocabularies.get(env.tenantA, v.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await s.vocabularies.get(env.tenantB, other.id)).id).toBe(other.id);
  });

  it('refuses bad names', async () => {
    await expect(s.vocabularies.create(env.tenantA, { name: '   ' })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(s.vocabularies.create(env.tenantA, { name: 'x'.repeat(101) })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(s.vocabularies.create('00000000-0000-4000-8000-00000000dead', { name: 'Orphan' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('seeds from the built-in vocabulary: every tag with its threshold and Chinese name, no LLM, no description rows', async () => {
    const builtin = await env.engine.builtinVocabulary();
    const v = await s.vocabularies.create(env.tenantA, { name: 'RAM++', fromBuiltin: true });
    expect(v.fromBuiltin).toBe(true);
    const stats = await s.vocabularies.stats(env.tenantA, v.id);
    expect(stats).toEqual({ tags: builtin.tags.length, enabledTags: builtin.tags.length, pendingTags: 0, failedTags: 0 });
    expect(builtin.tags.length).toBe(4585);
    const { prisma } = env.db;
    expect(await prisma.tagDescription.count({ where: { tag: { vocabularyId: v.id } } })).toBe(0);
    expect(await prisma.tagName.count({ where: { tag: { vocabularyId: v.id }, language: 'zh' } })).toBe(builtin.tags.filter((t) => t.nameZh).length);

    // spot checks: first, last and one in the middle keep name, Chinese name and threshold
    for (const i of [0, 2291, 4584]) {
      const b = builtin.tags[i]!;
      const tag = await tagNamed(s, env.tenantA, v.id, b.name.toUpperCase());
      expect(tag).toMatchObject({ name: b.name, builtin: true, builtinIndex: i, threshold: b.threshold, thresholdOverride: null, usesBuiltinDescriptions: true });
      expect(tag!.names).toEqual(b.nameZh ? [{ language: 'zh', name: b.nameZh }] : []);
      const descriptions = await descriptionsOf(s, env.tenantA, tag!.id);
      expect(descriptions).toHaveLength(b.descriptionCount);
      expect(descriptions.every((d) => d.source === 'BUILTIN' && d.text === null)).toBe(true);
    }

    // compiled from the pack's own embeddings, with the pack's thresholds
    const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(snap.revision).toBe(v.revision);
    expect(snap.bank!.tagCount).toBe(4585);
    const rowOf = new Map([...snap.tags].map((t, i) => [t.name, i]));
    // one segment: the pack's own, not a copy
    expect(snap.bank!.segments).toEqual([builtin.segment]);
    expect(snap.bank!.segments[0]).toBe(builtin.segment);
    for (const i of [0, 17, 4584]) {
      const c = rowOf.get(builtin.tags[i]!.name)!;
      expect([snap.bank!.segmentOf[c], snap.bank!.rowOf[c]]).toEqual([0, i]);
      expect(tagEmbeddings(snap.bank!, c)).toEqual(tagEmbeddings(builtin.bank, i));
      expect(snap.bank!.thresholds[c]).toBeCloseTo(builtin.tags[i]!.threshold, 6);
      expect(snap.tags.at(c)!).toMatchObject({ builtin: true, descriptionSource: 'BUILTIN', usedFallback: false, names: builtin.tags[i]!.nameZh ? { zh: builtin.tags[i]!.nameZh } : {} });
    }
    // a second tenant never sees it
    await expect(s.tags.list(env.tenantB, v.id, { first: 5 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
