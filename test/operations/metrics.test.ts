import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';
import { databaseMode } from '../support/database.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const TOKEN = 'metrics-token-0123456789abcdef';

/** The value of one sample line (`name{labels} value`), or undefined when it is not there. */
function sample(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const [series, value] = line.split(' ');
    if (series === (labels ? `${name}{${labels}}` : name)) return Number(value);
  }
  return undefined;
}

describe(`Prometheus metrics (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;

  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_METRICS_PORT: '0', OMNITAG_METRICS_TOKEN: TOKEN });
    tenant = await createTenantWithKeys(t.url, 'Measured');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
    const image = (await sharp({ create: { width: 32, height: 32, channels: 3, background: '#777' } }).png().toBuffer()).toString('base64');
    const TAG = 'mutation Tag($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i) { index } }';
    expect((await gql(t.url, TAG, { v: vocabId, i: [{ base64: image }, { base64: image }] }, tenant.clientKey)).errors).toBeUndefined();
    expect((await gql(t.url, 'query Missing { vocabulary(id: "00000000-0000-4000-8000-000000000000") { id } }', {}, tenant.clientKey)).errors).toBeDefined();
    // one refusal by a limit
    await gql(t.url, 'mutation($t: ID!) { setTenantLimits(tenantId: $t, input: { imagesPerMinute: 1 }) { id } }', { t: tenant.id }, PLATFORM_KEY);
    expect((await gql(t.url, TAG, { v: vocabId, i: [{ base64: image }, { base64: image }] }, tenant.clientKey)).errors![0]!.extensions!.code).toBe('RATE_LIMITED');
  });
  afterAll(() => t?.stop());

  it('serves the metrics on their own port, in Prometheus text format, with what happened', async () => {
    const res = await fetch(t.app.metricsUrl!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(sample(text, 'omnitag_graphql_operation_duration_seconds_count', 'operation="Tag",outcome="ok"')).toBe(1);
    expect(sample(text, 'omnitag_graphql_operation_duration_seconds_count', 'operation="Missing",outcome="NOT_FOUND"')).toBe(1);
    expect(sample(text, 'omnitag_graphql_operation_duration_seconds_count', 'operation="Tag",outcome="RATE_LIMITED"')).toBe(1);
    expect(sample(text, 'omnitag_rate_limit_rejections_total', 'limit="imagesPerMinute"')).toBe(1);
    expect(sample(text, 'omnitag_inference_queue_depth')).toBe(0);
    expect(sample(text, 'omnitag_inference_batch_size_sum', 'kind="encode"')).toBe(2);
    expect(sample(text, 'omnitag_inference_queue_wait_seconds_count', 'kind="encode"')).toBe(2);
    expect(sample(text, 'omnitag_model_runs_total', 'graph="image_encoder"')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'omnitag_model_run_seconds_total', 'graph="tag_decoder"')).toBeGreaterThan(0);
    expect(sample(text, 'omnitag_label_bank_cache_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'omnitag_embedding_cache_requests_total', 'result="computed"')).toBeGreaterThan(0);
    expect(sample(text, 'omnitag_description_job_items', 'state="pending"')).toBe(0);
    expect(sample(text, 'omnitag_library_job_items', 'state="pending"')).toBe(0);
    expect(sample(text, 'omnitag_db_pool_connections_max')).toBe(databaseMode === 'embedded' ? 1 : 10);
    expect(sample(text, 'omnitag_llm_requests_total')).toBe(0);
    expect(sample(text, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0);
    // no tenant's data: no ids, no keys
    expect(text).not.toContain(tenant.id);
    expect(text).not.toContain(vocabId);
    expect((await fetch(t.app.metricsUrl!.replace('/metrics', '/graphql'))).status).toBe(404);
  });

  it('serves them on the API port only with the metrics token', async () => {
    const url = `${t.url}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${tenant.adminKey}` } })).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${PLATFORM_KEY}` } })).status).toBe(401);
    const ok = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('# TYPE omnitag_graphql_operation_duration_seconds histogram');
  });

  it('has no metrics endpoint unless one is configured', async () => {
    const plain = await startTestApp();
    try {
      expect((await fetch(`${plain.url}/metrics`)).status).toBe(404);
      expect(plain.app.metricsUrl).toBeUndefined();
    } finally {
      await plain.stop();
    }
  });
});
