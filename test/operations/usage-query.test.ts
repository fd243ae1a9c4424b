import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';
import { databaseMode } from '../support/database.ts';
import { FakeLlmServer } from '../support/fake-llm-server.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const USAGE = `query($from: DateTime!, $to: DateTime!, $g: UsageGranularity, $t: ID) {
  usage(from: $from, to: $to, granularity: $g, tenantId: $t) {
    start tenantId requests imagesTagged tagsScored tagsDescribed descriptionsGenerated llmCalls llmTokens errors { code count }
  }
}`;
const TAG_MANY = 'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i) { index error { code } } }';

describe(`usage query (${databaseMode} database)`, () => {
  let t: TestApp;
  let llm: FakeLlmServer;
  let a: TestTenant;
  let b: TestTenant;
  const from = new Date(Date.now() - 3_600_000).toISOString();
  const to = new Date(Date.now() + 3_600_000).toISOString();

  /** Waits (bounded) until both tagging requests are on record: usage records are written in batches. */
  const recorded = async () => {
    for (let i = 0; i < 50; i++) {
      const all = await gql(t.url, USAGE, { from, to, g: 'MONTH' }, PLATFORM_KEY);
      if (all.data!.usage.reduce((s: number, p: any) => s + p.requests, 0) === 2) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the tagging requests were not recorded');
  };

  beforeAll(async () => {
    // every answer about "elk" declines: that tag fails for good, after its calls were made
    llm = await FakeLlmServer.start({ behave: (req) => (req.tag === 'elk' ? { kind: 'refuse' } : undefined) });
    t = await startTestApp({ OMNITAG_LLM_BASE_URL: llm.url, OMNITAG_LLM_MODEL: 'fake-model' });
    [a, b] = [await createTenantWithKeys(t.url, 'Usage A'), await createTenantWithKeys(t.url, 'Usage B')];
    const image = (await sharp({ create: { width: 40, height: 30, channels: 3, background: '#a63' } }).jpeg().toBuffer()).toString('base64');
    const bad = Buffer.from('not an image').toString('base64');
    for (const [tenant, tags, images] of [
      [a, ['cat', 'dog', 'owl', 'elk'], [image, image, bad]],
      [b, ['sky'], [image]],
    ] as const) {
      const v = (await gql(t.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
      await gql(t.url, 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }', { v, t: tags.map((name) => ({ name })) }, tenant.adminKey);
      const r = await gql(t.url, TAG_MANY, { v, i: images.map((base64) => ({ base64 })) }, tenant.clientKey);
      expect(r.errors).toBeUndefined();
      if (tenant === a) {
        // an LLM job: three of its tags get generated descriptions, the fourth fails
        const job = await gql(t.url, 'mutation($v: ID!) { generateDescriptions(vocabularyId: $v) { id } }', { v }, tenant.adminKey);
        const id = job.data!.generateDescriptions.id;
        let state = '';
        for (let i = 0; i < 100 && !['SUCCEEDED', 'FAILED'].includes(state); i++) {
          await new Promise((r) => setTimeout(r, 100));
          state = (await gql(t.url, 'query($id: ID!) { descriptionJob(id: $id) { state } }', { id }, tenant.adminKey)).data!.descriptionJob.state;
        }
        expect(llm.requests.some((r) => r.tag === 'elk')).toBe(true);
      }
    }
    await recorded();
  });
  afterAll(async () => {
    await t?.stop();
    await llm?.close();
  });

  it("gives a tenant ADMIN its own usage: images, tag scores, errors by code, descriptions", async () => {
    const r = await gql(t.url, USAGE, { from, to, g: 'HOUR' }, a.adminKey);
    expect(r.errors).toBeUndefined();
    const [hour, ...rest] = r.data!.usage;
    expect(rest.length).toBeLessThanOrEqual(1); // the hour may turn during the test
    const sum = (f: string) => r.data!.usage.reduce((s: number, p: any) => s + p[f], 0);
    expect(hour.tenantId).toBe(a.id);
    expect(new Date(hour.start).getUTCMinutes()).toBe(0);
    expect({ requests: sum('requests'), images: sum('imagesTagged'), scores: sum('tagsScored'), described: sum('tagsDescribed') }).toEqual({ requests: 1, images: 2, scores: 8, described: 3 });
    expect(sum('descriptionsGenerated')).toBeGreaterThanOrEqual(3);
    // every request the endpoint got, the failed tag's included, and the tokens it reported (the fake: 40 + 20 a choice)
    expect(sum('llmCalls')).toBe(llm.requests.length);
    expect(sum('llmTokens')).toBe(llm.requests.reduce((s, r) => s + 40 + 20 * (r.n ?? 1), 0));
    expect(llm.requests.length).toBeGreaterThan(0);
    expect(r.data!.usage.flatMap((p: any) => p.errors)).toEqual([{ code: 'BAD_IMAGE', count: 1 }]);
  });

  it("refuses another tenant's usage like a missing tenant, and CLIENT keys altogether", async () => {
    expect((await gql(t.url, USAGE, { from, to, t: b.id }, a.adminKey)).errors![0]!.extensions!.code).toBe('NOT_FOUND');
    expect((await gql(t.url, USAGE, { from, to }, a.clientKey)).errors![0]!.extensions!.code).toBe('FORBIDDEN');
    expect((await gql(t.url, USAGE, { from, to })).errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
  });

  it('gives the platform admin one tenant or all of them', async () => {
    const one = await gql(t.url, USAGE, { from, to, g: 'DAY', t: b.id }, PLATFORM_KEY);
    const sum = (f: string) => one.data!.usage.reduce((s: number, p: any) => s + p[f], 0);
    expect(one.data!.usage.every((p: any) => p.tenantId === b.id)).toBe(true);
    expect([sum('requests'), sum('imagesTagged'), sum('tagsScored'), sum('tagsDescribed'), sum('llmCalls')]).toEqual([1, 1, 1, 0, 0]);
    const all = await gql(t.url, USAGE, { from, to, g: 'MONTH' }, PLATFORM_KEY);
    const images = all.data!.usage.reduce((s: number, p: any) => s + p.imagesTagged, 0);
    expect(images).toBe(3);
    expect(all.data!.usage.every((p: any) => p.tenantId === null)).toBe(true);
  });

  it('answers BAD_USER_INPUT for an empty or too long range', async () => {
    expect((await gql(t.url, USAGE, { from: to, to: from }, a.adminKey)).errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect((await gql(t.url, USAGE, { from: '2020-01-01T00:00:00Z', to, g: 'HOUR' }, a.adminKey)).errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    const outside = await gql(t.url, USAGE, { from: '2020-01-01T00:00:00Z', to: '2020-02-01T00:00:00Z' }, a.adminKey);
    expect(outside.data!.usage).toEqual([]);
  });
});
