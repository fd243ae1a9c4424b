import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const CREATE_VOCAB = 'mutation($i: CreateVocabularyInput!) { createVocabulary(input: $i) { id name revision fromBuiltin } }';
const ADD = `mutation($v: ID!, $tags: [TagInput!]!) {
  addTags(vocabularyId: $v, tags: $tags) {
    results { index ok error { code message } tag { id name threshold thresholdOverride aliases names { language name } status descriptions { text source } } }
    vocabulary { revision }
  }
}`;

describe(`vocabulary operations over HTTP (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;

  beforeAll(async () => {
    t = await startTestApp();
    tenant = await createTenantWithKeys(t.url, 'Vocab Co');
  });
  afterAll(() => t?.stop());

  const admin = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, tenant.adminKey);

  it('creates, lists, renames and deletes vocabularies', async () => {
    const a = await admin(CREATE_VOCAB, { i: { name: 'Animals' } });
    expect(a.data!.createVocabulary).toMatchObject({ name: 'Animals', revision: 1, fromBuiltin: false });
    const id = a.data!.createVocabulary.id;
    await admin(CREATE_VOCAB, { i: { name: 'Vehicles' } });
    expect(errorCodes(await admin(CREATE_VOCAB, { i: { name: 'Animals' } }))).toEqual(['CONFLICT']);
    expect(errorCodes(await admin(CREATE_VOCAB, { i: { name: '' } }))).toEqual(['BAD_USER_INPUT']);

    const list = await admin('{ vocabularies(first: 1) { totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } }');
    expect(list.data!.vocabularies.totalCount).toBe(2);
    expect(list.data!.vocabularies.pageInfo.hasNextPage).toBe(true);
    const next = await admin('query($a: String) { vocabularies(first: 5, after: $a) { edges { node { name } } } }', { a: list.data!.vocabularies.pageInfo.endCursor });
    expect([list.data!.vocabularies.edges[0].node.name, ...next.data!.vocabularies.edges.map((e: any) => e.node.name)].sort()).toEqual(['Animals', 'Vehicles']);

    const renamed = await admin('mutation($id: ID!) { updateVocabulary(id: $id, input: { name: "Fauna" }) { name revision } }', { id });
    expect(renamed.data!.updateVocabulary.name).toBe('Fauna');
    expect(renamed.data!.updateVocabulary.revision).toBeGreaterThan(1);

    expect((await admin('mutation($id: ID!) { deleteVocabulary(id: $id) }', { id })).data!.deleteVocabulary).toBe(id);
    expect(errorCodes(await admin('query($id: ID!) { vocabulary(id: $id) { id } }', { id }))).toEqual(['NOT_FOUND']);
    expect(errorCodes(await admin('query($id: ID!) { vocabulary(id: $id) { id } }', { id: 'not-a-uuid' }))).toEqual(['NOT_FOUND']);
  });

  it('seeds a vocabulary from the built-in tags with thresholds and Chinese names', async () => {
    const v = await admin(CREATE_VOCAB, { i: { name: 'Everything', fromBuiltin: true } });
    const id = v.data!.createVocabulary.id;
    const stats = await admin('query($id: ID!) { vocabulary(id: $id) { stats { tags enabledTags pendingTags failedTags } } }', { id });
    expect(stats.data!.vocabulary.stats).toEqual({ tags: 4585, enabledTags: 4585, pendingTags: 0, failedTags: 0 });
    const abacus = await admin(
      'query($id: ID!) { vocabulary(id: $id) { tags(first: 5, search: "abacus") { edges { node { name threshold builtin names { language name } descriptions { text source } } } } } }',
      { id },
    );
    const node = abacus.data!.vocabulary.tags.edges[0].node;
    expect(node).toMatchObject({ name: 'abacus', threshold: 0.65, builtin: true, names: [{ language: 'zh', name: '算盘' }] });
    expect(node.descriptions.length).toBeGreaterThan(0);
    expect(node.descriptions.every((d: any) => d.source === 'BUILTIN' && d.text === null)).toBe(true);
  });

  it('adds tags in bulk with per-item results and edits them', async () => {
    const id = (await admin(CREATE_VOCAB, { i: { name: 'Custom' } })).data!.createVocabulary.id;
    const r = await admin(ADD, {
      v: id,
      tags: [
        { name: '  Red   Panda ', aliases: ['lesser panda'], names: [{ language: 'fr', name: 'panda roux' }], threshold: 0.7 },
        { name: 'Fire truck', descriptions: ['a red truck with ladders', 'an engine that carries firefighters'] },
        { name: 'red panda' },
        { name: 'x'.repeat(300) },
        { name: 'Lesser Panda' },
      ],
    });
    expect(r.errors).toBeUndefined();
    const results = r.data!.addTags.results;
    expect(results.map((x: any) => x.ok)).toEqual([true, true, false, false, false]);
    expect(results[2].error.code).toBe('CONFLICT');
    expect(results[3].error.code).toBe('BAD_USER_INPUT');
    expect(results[4].error.code).toBe('CONFLICT');
    expect(results[0].tag).toMatchObject({ name: 'Red Panda', threshold: 0.7, thresholdOverride: 0.7, aliases: ['lesser panda'], names: [{ language: 'fr', name: 'panda roux' }] });
    expect(results[0].tag.descriptions.length).toBeGreaterThan(1);
    expect(results[0].tag.descriptions.every((d: any) => d.source === 'TEMPLATE')).toBe(true);
    expect(results[1].tag.descriptions).toEqual([
      { text: 'a red truck with ladders', source: 'MANUAL' },
      { text: 'an engine that carries firefighters', source: 'MANUAL' },
    ]);
    const revision = r.data!.addTags.vocabulary.revision;
    expect(revision).toBeGreaterThan(1);

    const panda = results[0].tag.id;
    const upd = await admin('mutation($id: ID!) { updateTag(id: $id, input: { threshold: null, enabled: false, aliases: ["firefox"] }) { threshold thresholdOverride enabled aliases } }', { id: panda });
    expect(upd.data!.updateTag).toEqual({ threshold: 0.5, thresholdOverride: null, enabled: false, aliases: ['firefox'] });
    const keep = await admin('mutation($id: ID!) { updateTag(id: $id, input: { enabled: true }) { aliases enabled } }', { id: panda });
    expect(keep.data!.updateTag).toEqual({ aliases: ['firefox'], enabled: true });
    expect(errorCodes(await admin('mutation($id: ID!) { updateTag(id: $id, input: { threshold: 1.5 }) { id } }', { id: panda }))).toEqual(['BAD_USER_INPUT']);

    const search = await admin('query($id: ID!) { vocabulary(id: $id) { revision tags(search: "FIREFOX") { totalCount edges { node { name } } } } }', { id });
    expect(search.data!.vocabulary.tags.edges.map((e: any) => e.node.name)).toEqual(['Red Panda']);
    expect(search.data!.vocabulary.revision).toBeGreaterThan(revision);

    const set = await admin('mutation($id: ID!) { setTagDescriptions(tagId: $id, descriptions: ["a small red mammal"]) { descriptions { text source } } }', { id: panda });
    expect(set.data!.setTagDescriptions.descriptions).toEqual([{ text: 'a small red mammal', source: 'MANUAL' }]);

    const removed = await admin('mutation($ids: [ID!]!) { removeTags(ids: $ids) { id ok error { code } } }', { ids: [panda, '00000000-0000-4000-8000-000000000000'] });
    expect(removed.data!.removeTags).toEqual([
      { id: panda, ok: true, error: null },
      { id: '00000000-0000-4000-8000-000000000000', ok: false, error: { code: 'NOT_FOUND' } },
    ]);
  });

  it('generates descriptions in a background job and reports progress', async () => {
    const id = (await admin(CREATE_VOCAB, { i: { name: 'Jobs' } })).data!.createVocabulary.id;
    const tagIds = (await admin(ADD, { v: id, tags: [{ name: 'kayak' }, { name: 'canoe' }] })).data!.addTags.results.map((x: any) => x.tag.id);
    const job = await admin('mutation($v: ID!, $t: [ID!]) { generateDescriptions(vocabularyId: $v, tagIds: $t) { id state generator total } }', { v: id, t: tagIds });
    expect(job.errors).toBeUndefined();
    expect(job.data!.generateDescriptions).toMatchObject({ generator: 'template', total: 2 });
    const poll = () => admin('query($id: ID!) { descriptionJob(id: $id) { state succeeded failed progress finishedAt } }', { id: job.data!.generateDescriptions.id });
    await expect.poll(async () => (await poll()).data!.descriptionJob.state, { timeout: 30_000, interval: 200 }).toBe('SUCCEEDED');
    expect((await poll()).data!.descriptionJob).toMatchObject({ succeeded: 2, failed: 0, progress: 1 });
  });

  it('reads one tag by id with its descriptions; another tenant’s tag is NOT_FOUND', async () => {
    const id = (await admin(CREATE_VOCAB, { i: { name: 'One tag' } })).data!.createVocabulary.id;
    const added = await admin(ADD, { v: id, tags: [{ name: 'heron', descriptions: ['a tall grey wading bird'] }] });
    const heron = added.data!.addTags.results[0].tag.id;
    const TAG = 'query($id: ID!) { tag(id: $id) { id name descriptions { text source } } }';
    const read = await gql(t.url, TAG, { id: heron }, tenant.clientKey);
    expect(read.data!.tag).toEqual({ id: heron, name: 'heron', descriptions: [{ text: 'a tall grey wading bird', source: 'MANUAL' }] });
    const other = await createTenantWithKeys(t.url, 'Other Co');
    expect(errorCodes(await gql(t.url, TAG, { id: heron }, other.adminKey))).toEqual(['NOT_FOUND']);
    expect(errorCodes(await admin(TAG, { id: 'not-a-uuid' }))).toEqual(['NOT_FOUND']);
  });

  it('keeps CLIENT keys to reading and tagging', async () => {
    const client = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, tenant.clientKey);
    expect(errorCodes(await client(CREATE_VOCAB, { i: { name: 'Nope' } }))).toEqual(['FORBIDDEN']);
    const list = await client('{ vocabularies { totalCount } }');
    expect(list.errors).toBeUndefined();
    expect(list.data!.vocabularies.totalCount).toBeGreaterThan(0);
  });
});
