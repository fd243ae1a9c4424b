import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { FakeLlmServer } from '../support/fake-llm-server.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const JOB = `query($id: ID!) { descriptionJob(id: $id) {
  state generator total succeeded failed progress
  items { totalCount edges { node { state attempts error tag { name status statusReason descriptions { text source generatorModel } } } } }
} }`;

describe('LLM descriptions through the API', () => {
  let llm: FakeLlmServer;
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;

  beforeAll(async () => {
    llm = await FakeLlmServer.start();
    t = await startTestApp({
      OMNITAG_LLM_BASE_URL: llm.url,
      OMNITAG_LLM_API_KEY: 'test-key',
      OMNITAG_LLM_MODEL: 'fake-model',
      OMNITAG_LLM_MAX_RETRIES: '0',
      OMNITAG_LLM_TIMEOUT_MS: '2000',
    });
    tenant = await createTenantWithKeys(t.url, 'Describer');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "V" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
  });
  afterAll(async () => {
    await t?.stop();
    await llm?.close();
  });

  const generate = async (names: string[]) => {
    const added = await gql(t.url, 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { tag { id } } } }', { v: vocabId, t: names.map((name) => ({ name })) }, tenant.adminKey);
    const ids = added.data!.addTags.results.map((r: any) => r.tag.id);
    const job = await gql(t.url, 'mutation($v: ID!, $t: [ID!]) { generateDescriptions(vocabularyId: $v, tagIds: $t) { id generator } }', { v: vocabId, t: ids }, tenant.adminKey);
    expect(job.errors).toBeUndefined();
    return job.data!.generateDescriptions as { id: string; generator: string };
  };
  const finished = async (id: string) => {
    const read = async () => (await gql(t.url, JOB, { id }, tenant.clientKey)).data!.descriptionJob;
    await expect.poll(async () => (await read()).state, { timeout: 60_000, interval: 250 }).toMatch(/SUCCEEDED|FAILED/);
    return read();
  };

  it('reports the generator and stores LLM descriptions per tag', async () => {
    const model = await gql(t.url, '{ modelInfo { descriptionGenerator } }', {}, tenant.clientKey);
    expect(model.data!.modelInfo.descriptionGenerator).toBe('llm:fake-model');
    const job = await generate(['snowboard']);
    expect(job.generator).toBe('llm:fake-model');
    const done = await finished(job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', succeeded: 1, failed: 0, progress: 1 });
    const tag = done.items.edges[0].node.tag;
    expect(tag.status).toBe('READY');
    const llmDescriptions = tag.descriptions.filter((d: any) => d.source === 'LLM');
    expect(llmDescriptions.length).toBeGreaterThan(0);
    expect(llmDescriptions.every((d: any) => d.generatorModel === 'fake-model')).toBe(true);
    expect(llm.requests.some((r) => r.tag === 'snowboard')).toBe(true);
  });

  it('stores answers without their markup', async () => {
    llm.behave = () => ({
      kind: 'answer',
      contents: Array.from({ length: 10 }, (_, i) => `<p>A <b>carved</b> mask ${i}<script>fetch("//evil")</script> &amp; feathers <img src=x onerror=alert(1)>.</p>`),
    });
    try {
      const done = await finished((await generate(['mask'])).id);
      expect(done).toMatchObject({ state: 'SUCCEEDED', succeeded: 1 });
      const texts = done.items.edges[0].node.tag.descriptions.filter((d: any) => d.source === 'LLM').map((d: any) => d.text);
      expect(texts.length).toBeGreaterThan(0);
      for (const text of texts) expect(text).toMatch(/^A carved mask \d+ & feathers\.$/);
    } finally {
      llm.behave = undefined;
    }
  });

  it('names the code of an LLM error on the job item', async () => {
    llm.behave = () => ({ kind: 'error', status: 429, headers: { 'retry-after': '3600' } });
    try {
      const job = await generate(['drum']);
      const item = async () => (await gql(t.url, JOB, { id: job.id }, tenant.clientKey)).data!.descriptionJob.items.edges[0].node;
      await expect.poll(async () => (await item()).error, { timeout: 30_000, interval: 250 }).toMatch(/^LLM_RATE_LIMITED: /);
      expect((await item()).state).toBe('PENDING');
      const cancelled = await gql(t.url, 'mutation($id: ID!) { cancelDescriptionJob(id: $id) { state } }', { id: job.id }, tenant.adminKey);
      expect(cancelled.data!.cancelDescriptionJob.state).toBe('CANCELLED');
    } finally {
      llm.behave = undefined;
    }
  });

  it('records a failing LLM on the job items and keeps the tag scorable with templates', async () => {
    llm.behave = () => ({ kind: 'error', status: 500, message: 'upstream exploded' });
    try {
      const job = await generate(['toboggan']);
      // The item is retried later with back-off; its first failure is visible at once.
      const item = async () => (await gql(t.url, JOB, { id: job.id }, tenant.clientKey)).data!.descriptionJob.items.edges[0].node;
      await expect.poll(async () => (await item()).error, { timeout: 30_000, interval: 250 }).toMatch(/^LLM_UNAVAILABLE: /);
      const failed = await item();
      expect(failed.attempts).toBeGreaterThanOrEqual(1);
      // Not given up yet: the item waits for its retry, and the tag is not marked failed meanwhile.
      expect([failed.state, failed.tag.status, failed.tag.statusReason]).toEqual(['PENDING', 'GENERATING', null]);
      expect(failed.tag.descriptions.length).toBeGreaterThan(0);
      expect(failed.tag.descriptions.every((d: any) => d.source === 'TEMPLATE')).toBe(true);
      const cancelled = await gql(t.url, 'mutation($id: ID!) { cancelDescriptionJob(id: $id) { state } }', { id: job.id }, tenant.adminKey);
      expect(cancelled.data!.cancelDescriptionJob.state).toBe('CANCELLED');
    } finally {
      llm.behave = undefined;
    }
  });
});
