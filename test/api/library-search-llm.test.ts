import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { FakeLlmServer } from '../support/fake-llm-server.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';
import { base64Of, noisePng } from '../library/helpers.ts';

/** With an LLM configured, searchImages describes the concept with it (the fake, OpenAI-compatible server). */
describe(`searchImages with an LLM (${databaseMode} database)`, () => {
  let llm: FakeLlmServer;
  let t: TestApp;
  let a: TestTenant;

  beforeAll(async () => {
    llm = await FakeLlmServer.start();
    t = await startTestApp({ OMNITAG_LLM_BASE_URL: llm.url, OMNITAG_LLM_API_KEY: 'test-key', OMNITAG_LLM_MODEL: 'fake-model', OMNITAG_LLM_MAX_RETRIES: '0' });
    a = await createTenantWithKeys(t.url, 'Searcher');
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    await llm?.close();
  });

  it('asks the LLM for descriptions of the text and ranks the stored images by them', async () => {
    const v = (await gql(t.url, 'mutation { createVocabulary(input: { name: "S" }) { id } }', {}, a.adminKey)).data!.createVocabulary.id;
    // a hand-described tag: storing needs no LLM call
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "kite", descriptions: ["a kite in the sky."] }]) { results { ok } } }', { v }, a.adminKey);
    for (const seed of [1, 2, 3]) {
      const r = await gql(t.url, 'mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { store: true }) { stored { created } } }', { v, img: base64Of(await noisePng(700 + seed)) }, a.clientKey);
      expect(r.errors).toBeUndefined();
    }
    llm.reset();
    const r = await gql(t.url, '{ searchImages(text: "red panda", first: 3) { describedBy descriptions scanned hits { score } } }', {}, a.clientKey);
    expect(r.errors).toBeUndefined();
    const s = r.data!.searchImages;
    expect(s.describedBy).toBe('llm:fake-model');
    expect(s.descriptions).toBeGreaterThan(1);
    expect(s.scanned).toBe(3);
    expect(s.hits.map((h: any) => h.score)).toEqual([...s.hits.map((h: any) => h.score)].sort((x: number, y: number) => y - x));
    expect(llm.requests.length).toBeGreaterThan(0);
    expect(llm.requests.every((q) => q.tag === 'red panda')).toBe(true);
    const tags = await gql(t.url, 'query($v: ID!) { vocabulary(id: $v) { tags { totalCount } } }', { v }, a.clientKey);
    expect(tags.data!.vocabulary.tags.totalCount).toBe(1);
  });
});
