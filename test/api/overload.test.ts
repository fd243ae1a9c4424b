import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { databaseMode } from '../support/database.ts';
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

describe(`overload with real photos (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;
  let photos: Buffer[];
  const TAG = 'mutation($v: ID!, $f: Upload!) { tagImage(vocabularyId: $v, image: { upload: $f }) { revision image { width height } } }';

  /** One upload, as a client sends a photo; its code ('OK' or the error's) and retry hint. */
  const upload = async (photo: Buffer) => {
    const form = new FormData();
    form.append('operations', JSON.stringify({ query: TAG, variables: { v: vocabId, f: null } }));
    form.append('map', JSON.stringify({ 0: ['variables.f'] }));
    form.append('0', new Blob([photo], { type: 'image/jpeg' }), 'photo.jpg');
    const res = await fetch(`${t.url}/graphql`, { method: 'POST', body: form, headers: { authorization: `Bearer ${tenant.clientKey}`, 'apollo-require-preflight': 'true' } });
    const body = (await res.json()) as { errors?: { extensions: { code: string; retryAfterMs?: number } }[] };
    const error = body.errors?.[0]?.extensions;
    return { code: error?.code ?? 'OK', retryAfterMs: error?.retryAfterMs };
  };

  beforeAll(async () => {
    // A small queue, as on a modest machine; the pool is small too (the embedded database has one connection).
    t = await startTestApp({ OMNITAG_MAX_BATCH: '2', OMNITAG_MAX_QUEUE: '4', ...(databaseMode === 'postgresql' ? { DATABASE_POOL_SIZE: '2' } : {}) });
    tenant = await createTenantWithKeys(t.url, 'Photos');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "V" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "leaf" }, { name: "stone" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
    // Camera-like JPEGs of 1 to 14 megapixels (grain, so they do not compress to nothing).
    photos = await Promise.all(
      [1, 4, 8, 14].map((mp) => {
        const width = Math.round(Math.sqrt((mp * 1e6 * 4) / 3));
        const height = Math.round((width * 3) / 4);
        return sharp({ create: { width, height, channels: 3, background: '#6a8', noise: { type: 'gaussian', mean: 128, sigma: 30 } } })
          .blur(1.2)
          .jpeg({ quality: 85 })
          .toBuffer();
      }),
    );
    // the vocabulary is compiled before the burst: the burst is about images
    expect((await upload(photos[0]!)).code).toBe('OK');
  });
  afterAll(() => t?.stop());

  it('admits what the queue can take and answers OVERLOADED with a retry hint to the rest, never a database error', async () => {
    const burst = await Promise.all(Array.from({ length: 64 }, (_, i) => upload(photos[i % photos.length]!)));
    const codes = burst.map((r) => r.code);
    expect(codes.filter((c) => c !== 'OK' && c !== 'OVERLOADED')).toEqual([]);
    expect(codes).toContain('OK');
    expect(codes).toContain('OVERLOADED');
    expect(burst.filter((r) => r.code === 'OVERLOADED').every((r) => r.retryAfterMs! > 0)).toBe(true);
    // and it keeps serving
    expect((await gql(t.url, '{ health { status } }')).data!.health.status).toBe('OK');
    expect((await upload(photos[3]!)).code).toBe('OK');
  }, 180_000);
});
