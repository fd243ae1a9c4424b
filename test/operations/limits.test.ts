import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.ts';
import { createLogger } from '../../src/core/log.ts';
import { gql, PLATFORM_KEY, startTestApp, type GraphQLResponse, type TestApp } from '../support/app.ts';
import { databaseMode } from '../support/database.ts';
import { FakeLlmServer } from '../support/fake-llm-server.ts';
import { testRedisUrl } from '../support/redis.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const SET = 'mutation($t: ID!, $i: TenantLimitsInput!) { setTenantLimits(tenantId: $t, input: $i) { id limits { requestsPerSecond imagesPerMinute own } } }';
const TAG_MANY = 'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i) { index error { code } } }';
const TAG = 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision } }';
const CREATE_VOCAB = 'mutation($n: String!, $b: Boolean) { createVocabulary(input: { name: $n, fromBuiltin: $b }) { id } }';
const ADD = 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }';

const code = (r: GraphQLResponse) => r.errors?.[0]?.extensions?.code ?? 'OK';
const setLimits = async (url: string, tenantId: string, input: Record<string, number | null>) => {
  const r = await gql(url, SET, { t: tenantId, i: input }, PLATFORM_KEY);
  expect(r.errors).toBeUndefined();
  return r.data!.setTenantLimits.limits;
};

/** One request as a client sends it, with the answer's HTTP status and Retry-After header. */
async function raw(url: string, key: string, query: string, variables: Record<string, unknown> = {}) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as Omit<GraphQLResponse, 'status'>;
  return { status: res.status, retryAfter: res.headers.get('retry-after'), ...body };
}

/** What a request-rate limit must do, whichever store holds its counters. */
function requestRateCases(start: () => Promise<TestApp>, store: string) {
  describe(`request rate, counters in ${store}`, () => {
    let t: TestApp;
    let noisy: TestTenant;
    let quiet: TestTenant;
    beforeAll(async () => {
      t = await start();
      expect(t.app.services.limits.store).toBe(store);
      [noisy, quiet] = [await createTenantWithKeys(t.url, 'Noisy'), await createTenantWithKeys(t.url, 'Quiet')];
      await setLimits(t.url, noisy.id, { requestsPerSecond: 3 });
    });
    afterAll(() => t?.stop());

    it('answers RATE_LIMITED with 429, Retry-After and retryAfterMs past the limit, for that tenant only', async () => {
      const burst = await Promise.all(Array.from({ length: 8 }, () => raw(t.url, noisy.clientKey, '{ viewer { role } }')));
      const limited = burst.filter((r) => r.status === 429);
      // a bucket of 3, refilled one request per 333 ms: the burst spends it (one more may have
      // refilled while the burst was being answered)
      expect(burst.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(3);
      expect(burst.filter((r) => r.status === 200).length).toBeLessThanOrEqual(4);
      expect(limited.length).toBeGreaterThanOrEqual(4);
      for (const r of limited) {
        expect(r.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'requestsPerSecond', max: 3 });
        const ms = r.errors![0]!.extensions!.retryAfterMs as number;
        expect(ms).toBeGreaterThan(0);
        // one interval (333 ms), plus the few ms by which a concurrent request admitted first
        // read the clock later
        expect(ms).toBeLessThanOrEqual(360);
        expect(r.retryAfter).toBe('1');
      }
      // the other tenant and the platform admin are untouched meanwhile
      const others = await Promise.all(Array.from({ length: 6 }, () => raw(t.url, quiet.clientKey, '{ viewer { role } }')));
      expect(others.map((r) => r.status)).toEqual(Array(6).fill(200));
      expect((await raw(t.url, PLATFORM_KEY, '{ tenants { totalCount } }')).status).toBe(200);
      // an emptied bucket admits one request per interval, not the whole allowance at once
      const last = limited.at(-1)!.errors![0]!.extensions!.retryAfterMs as number;
      await new Promise((r) => setTimeout(r, last + 20));
      const paced = (await Promise.all(Array.from({ length: 3 }, () => raw(t.url, noisy.clientKey, '{ viewer { role } }')))).map((r) => r.status);
      expect(paced.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
      expect(paced.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1);
      // a second later the bucket is full again: the allowance at once
      await new Promise((r) => setTimeout(r, 1_100));
      const again = await Promise.all(Array.from({ length: 3 }, () => raw(t.url, noisy.clientKey, '{ viewer { role } }')));
      expect(again.map((r) => r.status)).toEqual([200, 200, 200]);
    });

    // A second instance on the same database and store, as a second replica would be (the
    // embedded database is one process's own: no second instance on it).
    it.skipIf(store === 'memory' || databaseMode === 'embedded')('shares its counters with another instance on the same store', async () => {
      const other = new App(t.app.config, createLogger('silent'));
      await other.start();
      try {
        const v = (await gql(t.url, CREATE_VOCAB, { n: 'shared' }, quiet.adminKey)).data!.createVocabulary.id;
        await gql(t.url, ADD, { v, t: [{ name: 'cat' }] }, quiet.adminKey);
        await setLimits(t.url, quiet.id, { imagesPerMinute: 3 });
        const image = (await sharp({ create: { width: 16, height: 16, channels: 3, background: '#123' } }).png().toBuffer()).toString('base64');
        const codes = [];
        for (const url of [t.url, other.url, t.url, other.url, other.url]) codes.push(code(await gql(url, TAG, { v, i: image }, quiet.clientKey)));
        expect(codes).toEqual(['OK', 'OK', 'OK', 'RATE_LIMITED', 'RATE_LIMITED']);
        // the request bucket is shared too: alone, each instance would admit 2 of its 3
        const paced = await createTenantWithKeys(t.url, 'Paced');
        await setLimits(t.url, paced.id, { requestsPerSecond: 2 });
        const statuses = [];
        for (const url of [t.url, other.url, t.url, other.url, t.url, other.url]) statuses.push((await raw(url, paced.clientKey, '{ viewer { role } }')).status);
        expect(statuses.slice(0, 2)).toEqual([200, 200]);
        expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(3);
      } finally {
        await other.stop();
      }
    });
  });
}

requestRateCases(() => startTestApp(), 'memory');
if (databaseMode === 'postgresql') requestRateCases(() => startTestApp({ OMNITAG_LIMITS_STORE: 'postgresql' }), 'postgresql');

describe('request rate with counters in Redis', async () => {
  const url = await testRedisUrl();
  if (!url) {
    it.skip('needs Redis (none answers at OMNITAG_TEST_REDIS_URL or 127.0.0.1:6379)', () => {});
    return;
  }
  requestRateCases(() => startTestApp({ OMNITAG_REDIS_URL: url }), 'redis');
});

describe(`images, quotas and the platform admin's settings (${databaseMode} database)`, () => {
  let t: TestApp;
  let llm: FakeLlmServer;
  let image: string;
  beforeAll(async () => {
    llm = await FakeLlmServer.start();
    t = await startTestApp({
      OMNITAG_LLM_BASE_URL: llm.url,
      OMNITAG_DESCRIPTION_WORKER: 'false',
      OMNITAG_DEFAULT_MAX_VOCABULARIES: '2',
      OMNITAG_DEFAULT_REQUESTS_PER_SECOND: '50',
      OMNITAG_DEFAULT_IMAGES_PER_MINUTE: '1200',
    });
    image = (await sharp({ create: { width: 32, height: 24, channels: 3, background: '#468' } }).png().toBuffer()).toString('base64');
  });
  afterAll(async () => {
    await t?.stop();
    await llm?.close();
  });

  const tenantWithVocab = async (name: string, tags = ['cat', 'dog']) => {
    const tenant = await createTenantWithKeys(t.url, name);
    const v = (await gql(t.url, CREATE_VOCAB, { n: 'v' }, tenant.adminKey)).data!.createVocabulary.id as string;
    const added = await gql(t.url, ADD, { v, t: tags.map((n) => ({ name: n })) }, tenant.adminKey);
    expect(added.errors).toBeUndefined();
    return { tenant, v };
  };

  it('counts every image of a batch against images per minute (RATE_LIMITED, 429) and nothing of a refused one', async () => {
    const { tenant, v } = await tenantWithVocab('Batches');
    await setLimits(t.url, tenant.id, { imagesPerMinute: 3 });
    const two = await raw(t.url, tenant.clientKey, TAG_MANY, { v, i: [{ base64: image }, { base64: image }] });
    expect(two.errors).toBeUndefined();
    const twoMore = await raw(t.url, tenant.clientKey, TAG_MANY, { v, i: [{ base64: image }, { base64: image }] });
    expect(twoMore.status).toBe(429);
    expect(twoMore.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'imagesPerMinute', max: 3 });
    expect(twoMore.errors![0]!.extensions!.retryAfterMs).toBeGreaterThan(0);
    expect(Number(twoMore.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(twoMore.retryAfter)).toBeLessThanOrEqual(60);
    // the refused batch took nothing: one image still fits, then none
    expect(code(await gql(t.url, TAG, { v, i: image }, tenant.clientKey))).toBe('OK');
    expect(code(await gql(t.url, TAG, { v, i: image }, tenant.clientKey))).toBe('RATE_LIMITED');
  });

  it('answers QUOTA_EXCEEDED naming imagesPerDay, without spending the minute', async () => {
    const { tenant, v } = await tenantWithVocab('Daily');
    await setLimits(t.url, tenant.id, { imagesPerDay: 2, imagesPerMinute: 10 });
    expect(code(await gql(t.url, TAG_MANY, { v, i: [{ base64: image }, { base64: image }] }, tenant.clientKey))).toBe('OK');
    const over = await raw(t.url, tenant.clientKey, TAG, { v, i: image });
    expect(over.status).toBe(429);
    expect(over.errors![0]!.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'imagesPerDay', max: 2 });
    expect(over.errors![0]!.message).toMatch(/imagesPerDay/);
    // a UTC day: the quota comes back at midnight, whenever the tenant began its day
    const untilMidnight = 86_400_000 - (Date.now() % 86_400_000);
    expect(Math.abs((over.errors![0]!.extensions!.retryAfterMs as number) - untilMidnight)).toBeLessThan(5_000);
    // back to no daily limit: the minute has 8 images left, not 7
    await setLimits(t.url, tenant.id, { imagesPerDay: 0 });
    const eight = await gql(t.url, TAG_MANY, { v, i: Array(8).fill({ base64: image }) }, tenant.clientKey);
    expect(code(eight)).toBe('OK');
  });

  it('keeps stored vocabularies and tags within their quotas, built-in seeds included', async () => {
    const { tenant, v } = await tenantWithVocab('Stores', ['a1']);
    await setLimits(t.url, tenant.id, { maxTags: 3 });
    expect(code(await gql(t.url, ADD, { v, t: [{ name: 'b2' }, { name: 'c3' }] }, tenant.adminKey))).toBe('OK');
    const over = await gql(t.url, ADD, { v, t: [{ name: 'd4' }] }, tenant.adminKey);
    expect(over.errors![0]!.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'maxTags', max: 3 });
    // items refused for their own faults (a bad name) do not count against it
    expect(code(await gql(t.url, ADD, { v, t: [{ name: '   ' }] }, tenant.adminKey))).toBe('OK');
    // the configured default of 2 vocabularies (this tenant has one)
    const builtinOver = await gql(t.url, CREATE_VOCAB, { n: 'seeded', b: true }, tenant.adminKey);
    expect(builtinOver.errors![0]!.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'maxTags' });
    await setLimits(t.url, tenant.id, { maxTags: 0 });
    expect(code(await gql(t.url, CREATE_VOCAB, { n: 'second' }, tenant.adminKey))).toBe('OK');
    const third = await gql(t.url, CREATE_VOCAB, { n: 'third' }, tenant.adminKey);
    expect(third.errors![0]!.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'maxVocabularies', max: 2 });
    const names = await gql(t.url, '{ vocabularies { edges { node { name } } } }', {}, tenant.adminKey);
    expect(names.data!.vocabularies.edges.map((e: any) => e.node.name).sort()).toEqual(['second', 'v']);
  });

  it('holds the stored quotas when edits arrive together: no two pass on the same count', async () => {
    const { tenant, v } = await tenantWithVocab('Crowded', ['first']);
    await setLimits(t.url, tenant.id, { maxTags: 10, maxVocabularies: 0 });
    const w = (await gql(t.url, CREATE_VOCAB, { n: 'second', b: false }, tenant.adminKey)).data!.createVocabulary.id;
    // eight edits of three tags each, over two vocabularies at once: three fit beside the first
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => gql(t.url, ADD, { v: i % 2 ? v : w, t: [0, 1, 2].map((k) => ({ name: `tag ${i} ${k}` })) }, tenant.adminKey)),
    );
    const codes = answers.map(code);
    expect(codes.filter((c) => c === 'OK').length).toBe(3);
    expect(codes.filter((c) => c === 'QUOTA_EXCEEDED').length).toBe(5);
    const count = async (id: string) => (await gql(t.url, 'query($v: ID!) { vocabulary(id: $v) { tags { totalCount } } }', { v: id }, tenant.adminKey)).data!.vocabulary.tags.totalCount as number;
    expect((await count(v)) + (await count(w))).toBe(10);
  });

  it('counts tags sent to the LLM per day and leaves no job behind when over', async () => {
    const { tenant, v } = await tenantWithVocab('Writers', ['owl', 'fox', 'elk']);
    await setLimits(t.url, tenant.id, { llmGenerationsPerDay: 4 });
    const GEN = 'mutation($v: ID!, $t: [ID!]) { generateDescriptions(vocabularyId: $v, tagIds: $t) { id total } }';
    const TAGS = 'query($v: ID!) { vocabulary(id: $v) { tags { edges { node { id name } } } } }';
    const ids = (await gql(t.url, TAGS, { v }, tenant.adminKey)).data!.vocabulary.tags.edges.map((e: any) => e.node.id);
    const first = await gql(t.url, GEN, { v, t: ids.slice(0, 2) }, tenant.adminKey);
    expect(first.data!.generateDescriptions.total).toBe(2);
    // all three asked, two already queued: only the new one is charged (3 of 4)
    const rest = await gql(t.url, GEN, { v }, tenant.adminKey);
    expect(rest.data!.generateDescriptions.total).toBe(1);
    const other = await tenantWithVocab('Writers too', ['bee', 'ant']);
    await setLimits(t.url, other.tenant.id, { llmGenerationsPerDay: 1 });
    const refused = await gql(t.url, GEN, { v: other.v }, other.tenant.adminKey);
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'llmGenerationsPerDay', max: 1 });
    const statuses = await gql(t.url, 'query($v: ID!) { vocabulary(id: $v) { stats { pendingTags } } }', { v: other.v }, other.tenant.adminKey);
    expect(statuses.data!.vocabulary.stats.pendingTags).toBe(0);
  });

  it('lets only the platform admin set limits; a tenant reads its own, null goes back to the default', async () => {
    const a = await createTenantWithKeys(t.url, 'Reader A');
    const b = await createTenantWithKeys(t.url, 'Reader B');
    const denied = await gql(t.url, SET, { t: a.id, i: { requestsPerSecond: 1000 } }, a.adminKey);
    expect(code(denied)).toBe('FORBIDDEN');
    expect(await setLimits(t.url, a.id, { requestsPerSecond: 7 })).toEqual({ requestsPerSecond: 7, imagesPerMinute: 1_200, own: ['requestsPerSecond'] });
    const mine = await gql(t.url, '{ viewer { tenant { limits { requestsPerSecond maxVocabularies own } } } }', {}, a.clientKey);
    expect(mine.data!.viewer.tenant.limits).toEqual({ requestsPerSecond: 7, maxVocabularies: 2, own: ['requestsPerSecond'] });
    const theirs = await gql(t.url, '{ viewer { tenant { limits { requestsPerSecond } } } }', {}, b.clientKey);
    expect(theirs.data!.viewer.tenant.limits.requestsPerSecond).toBe(50);
    expect(await setLimits(t.url, a.id, { requestsPerSecond: null })).toMatchObject({ requestsPerSecond: 50, own: [] });
    expect(code(await gql(t.url, SET, { t: a.id, i: { imagesPerDay: -1 } }, PLATFORM_KEY))).toBe('BAD_USER_INPUT');
    expect(code(await gql(t.url, SET, { t: '00000000-0000-4000-8000-000000000000', i: { imagesPerDay: 1 } }, PLATFORM_KEY))).toBe('NOT_FOUND');
  });
});
