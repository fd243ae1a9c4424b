import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

/**
 * Tenant B tries every id of tenant A through every operation that takes one; each must
 * answer exactly as for an id that does not exist, and A's data must not change.
 */
describe(`tenant isolation (${databaseMode} database)`, () => {
  let t: TestApp;
  let a: TestTenant;
  let b: TestTenant;
  const ids: Record<string, string> = {};
  let image: string;
  let secretPhoto: string;

  const asA = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, a.adminKey);
  const asB = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, b.adminKey);

  beforeAll(async () => {
    t = await startTestApp();
    a = await createTenantWithKeys(t.url, 'Tenant A');
    b = await createTenantWithKeys(t.url, 'Tenant B');
    ids.vocab = (await asA('mutation { createVocabulary(input: { name: "Secret" }) { id } }')).data!.createVocabulary.id;
    ids.bVocab = (await asB('mutation { createVocabulary(input: { name: "Mine" }) { id } }')).data!.createVocabulary.id;
    const added = await asA('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "prototype", descriptions: ["our unreleased gadget"] }]) { results { tag { id } } } }', { v: ids.vocab });
    ids.tag = added.data!.addTags.results[0].tag.id;
    ids.job = (await asA('mutation($v: ID!) { generateDescriptions(vocabularyId: $v) { id } }', { v: ids.vocab })).data!.generateDescriptions.id;
    ids.key = (await asA('{ apiKeys { id } }')).data!.apiKeys[0].id;
    // Let A's job finish first: its completion changes A's revision, which the test compares.
    const state = async () => (await asA('query($id: ID!) { descriptionJob(id: $id) { state } }', { id: ids.job })).data!.descriptionJob.state;
    for (let i = 0; i < 300 && (await state()) !== 'SUCCEEDED'; i++) await new Promise((r) => setTimeout(r, 200));
    expect(await state()).toBe('SUCCEEDED');
    image = (await sharp({ create: { width: 64, height: 64, channels: 3, background: '#0a0' } }).png().toBuffer()).toString('base64');
    secretPhoto = (await sharp({ create: { width: 48, height: 32, channels: 3, background: '#a05' } }).png().toBuffer()).toString('base64');
    const stored = await asA('mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img, externalId: "secret-photo" }, options: { store: true }) { stored { image { id } } } }', { v: ids.vocab, img: secretPhoto });
    ids.image = stored.data!.tagImage.stored.image.id;
    // an import of the same photo (a duplicate: no new image), finished before the attempts
    ids.importJob = (await asA('mutation($v: ID!, $img: String!) { importImages(vocabularyId: $v, images: [{ base64: $img }]) { id } }', { v: ids.vocab, img: secretPhoto })).data!.importImages.id;
    const imported = async () => (await asA('query($id: ID!) { importJob(id: $id) { state } }', { id: ids.importJob })).data!.importJob.state;
    for (let i = 0; i < 300 && (await imported()) !== 'SUCCEEDED'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await imported()).toBe('SUCCEEDED');
  });
  afterAll(() => t?.stop());

  const snapshotA = () =>
    asA(`query($v: ID!) {
      vocabulary(id: $v) { name revision tags { edges { node { id name threshold enabled aliases descriptions { text } } } } }
      apiKeys { id revokedAt }
    }`, { v: ids.vocab });

  it('answers NOT_FOUND for every id of another tenant, and changes nothing', async () => {
    const before = await snapshotA();
    expect(before.errors).toBeUndefined();
    const attempts: [string, string, Record<string, unknown>][] = [
      ['vocabulary', 'query($id: ID!) { vocabulary(id: $id) { id } }', { id: ids.vocab }],
      ['updateVocabulary', 'mutation($id: ID!) { updateVocabulary(id: $id, input: { name: "pwned" }) { id } }', { id: ids.vocab }],
      ['deleteVocabulary', 'mutation($id: ID!) { deleteVocabulary(id: $id) }', { id: ids.vocab }],
      ['addTags', 'mutation($id: ID!) { addTags(vocabularyId: $id, tags: [{ name: "x" }]) { results { ok } } }', { id: ids.vocab }],
      ['updateTag', 'mutation($id: ID!) { updateTag(id: $id, input: { name: "pwned" }) { id } }', { id: ids.tag }],
      ['setTagDescriptions', 'mutation($id: ID!) { setTagDescriptions(tagId: $id, descriptions: ["x"]) { id } }', { id: ids.tag }],
      ['generateDescriptions(vocabulary)', 'mutation($id: ID!) { generateDescriptions(vocabularyId: $id) { id } }', { id: ids.vocab }],
      ['generateDescriptions(tags)', 'mutation($v: ID!, $t: [ID!]) { generateDescriptions(vocabularyId: $v, tagIds: $t) { id } }', { v: ids.bVocab, t: [ids.tag] }],
      ['descriptionJob', 'query($id: ID!) { descriptionJob(id: $id) { id } }', { id: ids.job }],
      ['revokeApiKey', 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: ids.key }],
      ['createApiKey', 'mutation($id: ID!) { createApiKey(input: { name: "x", role: ADMIN, tenantId: $id }) { secret } }', { id: a.id }],
      ['calibrateThresholds', 'mutation($id: ID!) { calibrateThresholds(vocabularyId: $id, target: { maxF1: true }, dryRun: false, minPositives: 1) { dryRun } }', { id: ids.vocab }],
      ['submitFeedback', 'mutation($t: ID!) { submitFeedback(imageId: "00000000-0000-4000-8000-000000000000", tagId: $t, present: true) { present } }', { t: ids.tag }],
      ['vocabulary.feedback', 'query($id: ID!) { vocabulary(id: $id) { feedback { present } lastCalibration { revision } } }', { id: ids.vocab }],
      ['setTagThresholds', 'mutation($id: ID!, $t: ID!) { setTagThresholds(vocabularyId: $id, thresholds: [{ tagId: $t, threshold: 0.3 }]) { results { ok } } }', { id: ids.vocab, t: ids.tag }],
      ['tagImage', 'mutation($id: ID!, $img: String!) { tagImage(vocabularyId: $id, image: { base64: $img }) { revision } }', { id: ids.vocab, img: image }],
      ['tagImages', 'mutation($id: ID!, $img: String!) { tagImages(vocabularyId: $id, images: [{ base64: $img }]) { index } }', { id: ids.vocab, img: image }],
      ['image', 'query($id: ID!) { image(id: $id) { id externalId } }', { id: ids.image }],
      ['images', 'query($id: ID!) { images(vocabularyId: $id) { totalCount } }', { id: ids.vocab }],
      ['images(tag)', 'query($id: ID!, $t: String) { images(vocabularyId: $id, filter: { tag: $t }) { totalCount } }', { id: ids.vocab, t: ids.tag }],
      ['images(B vocabulary, A tag)', 'query($id: ID!, $t: String) { images(vocabularyId: $id, filter: { tag: $t }) { totalCount } }', { id: ids.bVocab, t: ids.tag }],
      ['searchImages', 'query($id: ID!) { searchImages(vocabularyId: $id, text: "prototype") { scanned } }', { id: ids.vocab }],
      ['importImages', 'mutation($id: ID!, $img: String!) { importImages(vocabularyId: $id, images: [{ base64: $img }]) { id } }', { id: ids.vocab, img: image }],
      ['importJob', 'query($id: ID!) { importJob(id: $id) { id state items { edges { node { imageId } } } } }', { id: ids.importJob }],
      ['cancelImportJob', 'mutation($id: ID!) { cancelImportJob(id: $id) { id } }', { id: ids.importJob }],
      ['tagImage(heatmaps)', 'mutation($id: ID!, $img: String!) { tagImage(vocabularyId: $id, image: { base64: $img }) { tags { explain { heatmap { values cls } heatmapPng(size: 32) } } } }', { id: ids.vocab, img: image }],
    ];
    for (const [name, query, variables] of attempts) {
      const r = await asB(query, variables);
      expect(errorCodes(r), name).toEqual(['NOT_FOUND']);
      expect(JSON.stringify(r), name).not.toMatch(/Secret|prototype|unreleased/);
    }
    const deletedImages = await asB('mutation($ids: [ID!]!) { deleteImages(ids: $ids) { id deleted } }', { ids: [ids.image] });
    expect(deletedImages.data!.deleteImages).toEqual([{ id: ids.image, deleted: false }]);
    const deletedByName = await asB('mutation { deleteImagesByExternalId(externalIds: ["secret-photo"]) { id deleted } }');
    expect(deletedByName.data!.deleteImagesByExternalId).toEqual([{ id: 'secret-photo', deleted: false }]);
    expect((await asA('query($id: ID!) { image(id: $id) { externalId } }', { id: ids.image })).data!.image.externalId).toBe('secret-photo');
    const removed = await asB('mutation($ids: [ID!]!) { removeTags(ids: $ids) { ok error { code } } }', { ids: [ids.tag] });
    expect(removed.data!.removeTags).toEqual([{ ok: false, error: { code: 'NOT_FOUND' } }]);
    // A's tag through B's own vocabulary: that item fails exactly like a missing id, B's revision stays
    const bRevision = (await asB('query($v: ID!) { vocabulary(id: $v) { revision } }', { v: ids.bVocab })).data!.vocabulary.revision;
    const thresholds = await asB('mutation($v: ID!, $t: ID!) { setTagThresholds(vocabularyId: $v, thresholds: [{ tagId: $t, threshold: 0.3 }]) { results { ok error { code message } } vocabulary { revision } } }', { v: ids.bVocab, t: ids.tag });
    const missing = await asB('mutation($v: ID!) { setTagThresholds(vocabularyId: $v, thresholds: [{ tagId: "00000000-0000-4000-8000-000000000000", threshold: 0.3 }]) { results { ok error { code message } } } }', { v: ids.bVocab });
    expect(thresholds.data!.setTagThresholds.results).toEqual(missing.data!.setTagThresholds.results);
    expect(thresholds.data!.setTagThresholds.results).toEqual([{ ok: false, error: { code: 'NOT_FOUND', message: 'tag not found' } }]);
    expect(thresholds.data!.setTagThresholds.vocabulary.revision).toBe(bRevision);
    // The same attempts through B's CLIENT key fare no better.
    expect(errorCodes(await gql(t.url, 'query($id: ID!) { vocabulary(id: $id) { id } }', { id: ids.vocab }, b.clientKey))).toEqual(['NOT_FOUND']);

    const after = await snapshotA();
    expect(after.data).toEqual(before.data);
  });

  it('lists only the caller’s own objects', async () => {
    const vocabs = await asB('{ vocabularies { edges { node { id name } } } }');
    expect(vocabs.data!.vocabularies.edges.map((e: any) => e.node.id)).toEqual([ids.bVocab]);
    const keys = await asB('{ apiKeys { id } }');
    expect(keys.data!.apiKeys.map((k: any) => k.id)).not.toContain(ids.key);
  });

  it('keeps libraries apart: search, listings and duplicates see only the caller’s images', async () => {
    const search = await asB('{ searchImages(text: "prototype") { scanned hits { image { id } } } }');
    expect(search.data!.searchImages).toEqual({ scanned: 0, hits: [] });
    const listed = await asB('query($v: ID!) { images(vocabularyId: $v, filter: { externalId: "secret-photo" }) { totalCount } }', { v: ids.bVocab });
    expect(listed.data!.images.totalCount).toBe(0);
    // the same bytes under the same external id in B: B's own new image, nothing of A's reused
    const own = (await asB('mutation { createVocabulary(input: { name: "B library" }) { id } }')).data!.createVocabulary.id;
    const gadget = await asB('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "widget" }]) { results { ok } } }', { v: own });
    expect(gadget.errors).toBeUndefined();
    const mine = await asB('mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img, externalId: "secret-photo" }, options: { store: true }) { stored { created image { id } } } }', { v: own, img: secretPhoto });
    expect(mine.data!.tagImage.stored.created).toBe(true);
    expect(mine.data!.tagImage.stored.image.id).not.toBe(ids.image);
    const searchA = await asA('{ searchImages(text: "prototype") { scanned hits { image { id } } } }');
    expect(searchA.data!.searchImages.hits.map((h: any) => h.image.id)).toEqual([ids.image]);
  });

  it('shares cached embeddings of identical texts without revealing them', async () => {
    const r = await asB('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "gizmo", descriptions: ["our unreleased gadget"] }]) { results { ok tag { descriptions { text } } } } }', { v: ids.bVocab });
    expect(r.data!.addTags.results[0].tag.descriptions).toEqual([{ text: 'our unreleased gadget' }]);
    const tagged = await asB('mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { includeAll: true, explain: true }) { scores { name } } }', { v: ids.bVocab, img: image });
    expect(tagged.errors).toBeUndefined();
    // B's scores list B's tags only, although A's "prototype" shares the description's cached embedding.
    expect(tagged.data!.tagImage.scores.map((s: { name: string }) => s.name)).toEqual(['gizmo']);
  });
});
