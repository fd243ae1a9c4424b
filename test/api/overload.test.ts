import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

describe('overload and oversize requests', () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;
  let image: string;

  beforeAll(async () => {
    // A queue of one image and batches of one: a burst must overflow it.
    t = await startTestApp({ OMNITAG_MAX_BATCH: '1', OMNITAG_MAX_QUEUE: '1', OMNITAG_MAX_IMAGES_PER_REQUEST: '2' });
    tenant = await createTenantWithKeys(t.url, 'Busy');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "V" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "sky" }, { name: "sea" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
    image = (await sharp({ create: { width: 1200, height: 900, channels: 3, background: '#345' } }).jpeg().toBuffer()).toString('base64');
  });
  afterAll(() => t?.stop());

  it('answers OVERLOADED with a retry hint when the inference queue is full, and keeps serving', async () => {
    const burst = await Promise.all(
      Array.from({ length: 12 }, () =>
        gql(t.url, 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision } }', { v: vocabId, i: image }, tenant.clientKey),
      ),
    );
    const codes = burst.map((r) => r.errors?.[0]?.extensions?.code ?? 'OK');
    expect(codes).toContain('OK');
    expect(codes).toContain('OVERLOADED');
    expect(codes.every((c) => c === 'OK' || c === 'OVERLOADED')).toBe(true);
    const overloaded = burst.find((r) => r.errors?.[0]?.extensions?.code === 'OVERLOADED')!;
    expect(overloaded.errors![0]!.extensions!.retryAfterMs).toBeGreaterThan(0);
    // Health is answered meanwhile and afterwards; a later request succeeds.
    expect((await gql(t.url, '{ health { status } }')).data!.health.status).toBe('OK');
    const later = await gql(t.url, 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision } }', { v: vocabId, i: image }, tenant.clientKey);
    expect(later.errors).toBeUndefined();
  });

  it('refuses more uploaded files than a request may carry with PAYLOAD_TOO_LARGE', async () => {
    const bytes = Buffer.from(image, 'base64');
    const form = new FormData();
    const query = 'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i) { index } }';
    form.append('operations', JSON.stringify({ query, variables: { v: vocabId, i: [{ upload: null }, { upload: null }, { upload: null }] } }));
    form.append('map', JSON.stringify({ 0: ['variables.i.0.upload'], 1: ['variables.i.1.upload'], 2: ['variables.i.2.upload'] }));
    for (const n of ['0', '1', '2']) form.append(n, new Blob([bytes], { type: 'image/jpeg' }), `${n}.jpg`);
    const res = await fetch(`${t.url}/graphql`, { method: 'POST', body: form, headers: { authorization: `Bearer ${tenant.clientKey}`, 'apollo-require-preflight': 'true' } });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { errors: { extensions: { code: string } }[] };
    expect(body.errors[0]!.extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });
});
