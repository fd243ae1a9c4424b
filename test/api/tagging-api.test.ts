import http from 'node:http';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const TAG_IMAGE = `mutation($v: ID!, $image: ImageInput!, $o: TagImageOptions) {
  tagImage(vocabularyId: $v, image: $image, options: $o) {
    vocabularyId revision
    tags { name score threshold passed descriptionSource usedFallback tag { id name } explanation { text source weight } }
    scores { name score passed }
    image { format width height }
    timing { totalMs inferenceMs }
  }
}`;

/**
 * A multipart request as the GraphQL multipart request spec describes it. Every upload goes over
 * one keep-alive connection, so a request that leaves body unread would break the next one.
 */
const uploadConnection = new http.Agent({ keepAlive: true, maxSockets: 1 });
async function upload(url: string, key: string, query: string, variables: Record<string, unknown>, files: Record<string, { path: string | string[]; bytes: Uint8Array; type: string }>, headers: Record<string, string> = { 'apollo-require-preflight': 'true' }) {
  const form = new FormData();
  const map: Record<string, string[]> = {};
  Object.values(files).forEach((f, i) => (map[String(i)] = [f.path].flat()));
  form.append('operations', JSON.stringify({ query, variables }));
  form.append('map', JSON.stringify(map));
  Object.values(files).forEach((f, i) => form.append(String(i), new Blob([f.bytes], { type: f.type }), `image${i}`));
  const encoded = new Response(form);
  const body = Buffer.from(await encoded.arrayBuffer());
  return new Promise<{ status: number; data?: any; errors?: any[] }>((resolve, reject) => {
    const req = http.request(`${url}/graphql`, { method: 'POST', agent: uploadConnection, headers: { authorization: `Bearer ${key}`, 'content-type': encoded.headers.get('content-type')!, 'content-length': body.length, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, ...JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer on the upload connection')));
    req.on('error', reject);
    req.end(body);
  });
}

describe(`tagging over HTTP (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;
  let emptyVocabId: string;
  let jpeg: Buffer;

  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_MAX_IMAGE_BYTES: String(200_000), OMNITAG_MAX_IMAGES_PER_REQUEST: '3', OMNITAG_ALLOW_URL_FETCH: 'true' });
    tenant = await createTenantWithKeys(t.url, 'Tagger');
    const mk = async (name: string) =>
      (await gql(t.url, 'mutation($n: String!) { createVocabulary(input: { name: $n }) { id } }', { n: name }, tenant.adminKey)).data!.createVocabulary.id;
    vocabId = await mk('Pets');
    emptyVocabId = await mk('Empty');
    const add = await gql(
      t.url,
      'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat", names: [{ language: "fr", name: "chat" }] }, { name: "dog", descriptions: ["a loyal pet dog", "a puppy"] }, { name: "parrot" }]) { results { ok } } }',
      { v: vocabId },
      tenant.adminKey,
    );
    expect(add.data!.addTags.results.every((r: any) => r.ok)).toBe(true);
    jpeg = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 120, b: 40 } } }).jpeg().toBuffer();
  });
  afterAll(async () => {
    uploadConnection.destroy();
    await t?.stop();
  });

  const tag = (image: Record<string, unknown>, o?: Record<string, unknown>, key = tenant.clientKey) => gql(t.url, TAG_IMAGE, { v: vocabId, image, o }, key);

  it('tags a base64 image with every score, names, explanations and the revision used', async () => {
    const r = await tag({ base64: jpeg.toString('base64') }, { includeAll: true, explain: true, threshold: 0.01, language: 'fr' });
    expect(r.errors).toBeUndefined();
    const res = r.data!.tagImage;
    expect(res.vocabularyId).toBe(vocabId);
    expect(res.revision).toBeGreaterThan(1);
    expect(res.image).toEqual({ format: 'jpeg', width: 320, height: 240 });
    expect(res.scores.map((s: any) => s.name).sort()).toEqual(['chat', 'dog', 'parrot']);
    for (const s of res.scores) expect(s.score).toBeGreaterThan(0);
    // With a threshold override of 0.01 every tag passes (sigmoid of the tiny model's logits is ~0.5).
    expect(res.tags.map((s: any) => s.name).sort()).toEqual(['chat', 'dog', 'parrot']);
    const dog = res.tags.find((s: any) => s.name === 'dog');
    expect(dog).toMatchObject({ threshold: 0.01, passed: true, descriptionSource: 'MANUAL', usedFallback: false });
    expect(dog.explanation.map((e: any) => e.text).sort()).toEqual(['a loyal pet dog', 'a puppy']);
    expect(dog.explanation.reduce((a: number, e: any) => a + e.weight, 0)).toBeCloseTo(1, 4);
    expect(res.tags[0].score).toBeGreaterThanOrEqual(res.tags[1].score);
    expect(res.timing.totalMs).toBeGreaterThanOrEqual(res.timing.inferenceMs);
  });

  it('applies topK and minScore, and the tags own thresholds without an override', async () => {
    const all = (await tag({ base64: jpeg.toString('base64') }, { includeAll: true })).data!.tagImage.scores;
    const top = await tag({ base64: jpeg.toString('base64') }, { threshold: 0.01, topK: 1 });
    expect(top.data!.tagImage.tags).toHaveLength(1);
    expect(top.data!.tagImage.tags[0].score).toBeCloseTo(Math.max(...all.map((s: any) => s.score)), 6);
    const none = await tag({ base64: jpeg.toString('base64') }, { threshold: 0.01, minScore: 0.999 });
    expect(none.data!.tagImage.tags).toEqual([]);
    const own = (await tag({ base64: jpeg.toString('base64') }, { includeAll: true })).data!.tagImage;
    for (const s of own.scores) expect(s.passed).toBe(s.score > 0.5);
  });

  it('accepts multipart uploads with the CSRF header and refuses them without', async () => {
    const files = { a: { path: 'variables.image.upload', bytes: jpeg, type: 'image/jpeg' } };
    const ok = await upload(t.url, tenant.clientKey, TAG_IMAGE, { v: vocabId, image: { upload: null } }, files);
    expect(ok.errors).toBeUndefined();
    expect(ok.data.tagImage.image.format).toBe('jpeg');
    const csrf = await upload(t.url, tenant.clientKey, TAG_IMAGE, { v: vocabId, image: { upload: null } }, files, {});
    expect(csrf.status).toBe(400);
  });

  it('reads several uploads in one request and answers upload mistakes with typed errors', async () => {
    const TAG_MANY = 'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i) { index error { code } result { image { width height } } } }';
    const png = await sharp({ create: { width: 50, height: 70, channels: 3, background: '#123456' } }).png().toBuffer();
    const three = await upload(t.url, tenant.clientKey, TAG_MANY, { v: vocabId, i: [{ upload: null }, { upload: null }, { upload: null }] }, {
      a: { path: 'variables.i.0.upload', bytes: jpeg, type: 'image/jpeg' },
      b: { path: 'variables.i.1.upload', bytes: Buffer.alloc(300_000, 7), type: 'image/jpeg' },
      c: { path: 'variables.i.2.upload', bytes: png, type: 'image/png' },
    });
    expect(three.errors).toBeUndefined();
    expect(three.data.tagImages.map((o: any) => o.error?.code ?? o.result.image)).toEqual([{ width: 320, height: 240 }, 'IMAGE_TOO_LARGE', { width: 50, height: 70 }]);

    const twice = await upload(t.url, tenant.clientKey, TAG_MANY, { v: vocabId, i: [{ upload: null }, { upload: null }] }, {
      a: { path: ['variables.i.0.upload', 'variables.i.1.upload'], bytes: jpeg, type: 'image/jpeg' },
    });
    expect(twice.data.tagImages.map((o: any) => o.error?.code ?? 'ok').sort()).toEqual(['BAD_USER_INPUT', 'ok']);

    // A request refused before its file is read leaves the server (and the next request) unharmed.
    const unknown = await upload(t.url, tenant.clientKey, TAG_IMAGE, { v: '00000000-0000-4000-8000-000000000000', image: { upload: null } }, { a: { path: 'variables.image.upload', bytes: Buffer.alloc(150_000, 3), type: 'image/jpeg' } });
    expect(unknown.errors![0]!.extensions.code).toBe('NOT_FOUND');
    const after = await upload(t.url, tenant.clientKey, TAG_IMAGE, { v: vocabId, image: { upload: null } }, { a: { path: 'variables.image.upload', bytes: jpeg, type: 'image/jpeg' } });
    expect(after.errors).toBeUndefined();
  });

  it('answers malformed multipart requests with BAD_USER_INPUT and keeps the connection usable', async () => {
    const post = (body: string) =>
      new Promise<{ status: number; code?: string }>((resolve, reject) => {
        const req = http.request(`${t.url}/graphql`, { method: 'POST', agent: uploadConnection, headers: { authorization: `Bearer ${tenant.clientKey}`, 'apollo-require-preflight': 'true', 'content-type': 'multipart/form-data; boundary=B', 'content-length': Buffer.byteLength(body) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, code: JSON.parse(Buffer.concat(chunks).toString()).errors?.[0]?.extensions?.code }));
        });
        req.setTimeout(5_000, () => req.destroy(new Error('no answer on the upload connection')));
        req.on('error', reject);
        req.end(body);
      });
    const field = (name: string, value: string) => `--B\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const file = (name: string) => `--B\r\nContent-Disposition: form-data; name="${name}"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n${'x'.repeat(5000)}\r\n`;
    const operations = JSON.stringify({ query: TAG_IMAGE, variables: { v: vocabId, image: { upload: null } } });
    const end = '--B--\r\n';
    // Refused before GraphQL runs: 400. A file the map names that never comes fails in the resolver: 200 with the error.
    const cases: [string, number][] = [
      [field('operations', '{not json') + end, 400],
      [field('operations', operations) + file('0') + end, 400], // no map
      [field('map', '{"0":["variables.image.upload"]}') + field('operations', operations) + end, 400], // misordered
      [field('operations', operations) + field('map', '{"0":["nowhere.at.all"]}') + file('0') + end, 400],
      ['--B\r\nthis is not a part', 400],
      [field('operations', operations) + field('map', '{"0":["variables.image.upload"]}') + end, 200],
    ];
    for (const [body, status] of cases) {
      expect({ case: cases.findIndex((c) => c[0] === body), ...(await post(body)) }).toEqual({ case: cases.findIndex((c) => c[0] === body), status, code: 'BAD_USER_INPUT' });
    }
    // A valid request cut short anywhere: a typed answer every time, never a 500 or a crash.
    const whole = field('operations', operations) + field('map', '{"0":["variables.image.upload"]}') + file('0') + end;
    for (let cut = 1; cut < whole.length; cut += 97) {
      const answer = await post(whole.slice(0, cut));
      expect({ cut, ...answer }).toEqual({ cut, status: expect.any(Number), code: expect.stringMatching(/^(BAD_USER_INPUT|BAD_IMAGE|UNSUPPORTED_FORMAT)$/) });
      expect(answer.status).toBeLessThan(500);
    }
    const ok = await upload(t.url, tenant.clientKey, TAG_IMAGE, { v: vocabId, image: { upload: null } }, { a: { path: 'variables.image.upload', bytes: jpeg, type: 'image/jpeg' } });
    expect(ok.errors).toBeUndefined();
  });

  it('answers bad images with typed errors and loses nothing else in a batch', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><image href="http://127.0.0.1:1/x"/></svg>');
    const huge = Buffer.alloc(300_000, 1);
    const truncated = jpeg.subarray(0, 200);
    const batch = await gql(
      t.url,
      'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i, options: { threshold: 0.01 }) { index error { code } result { tags { name } } } }',
      { v: vocabId, i: [{ base64: jpeg.toString('base64') }, { base64: svg.toString('base64') }, { base64: huge.toString('base64') }] },
      tenant.clientKey,
    );
    expect(batch.errors).toBeUndefined();
    const out = batch.data!.tagImages;
    expect(out.map((o: any) => o.index)).toEqual([0, 1, 2]);
    expect(out[0].result.tags.length).toBe(3);
    expect(out[1].error.code).toBe('UNSUPPORTED_FORMAT');
    expect(out[2].error.code).toBe('IMAGE_TOO_LARGE');
    expect(errorCodes(await tag({ base64: truncated.toString('base64') }))).toEqual(['BAD_IMAGE']);
    expect(errorCodes(await tag({ base64: Buffer.from('hello world').toString('base64') }))).toEqual(['BAD_IMAGE']);
    expect(errorCodes(await tag({ base64: '!!!not base64!!!' }))).toEqual(['BAD_USER_INPUT']);
    const upl = await upload(t.url, tenant.clientKey, TAG_IMAGE, { v: vocabId, image: { upload: null } }, { a: { path: 'variables.image.upload', bytes: Buffer.from('%PDF-1.4 not an image'), type: 'image/jpeg' } });
    expect(upl.errors![0].extensions.code).toMatch(/BAD_IMAGE|UNSUPPORTED_FORMAT/);
  });

  it('enforces the image-input rules and request limits', async () => {
    expect(errorCodes(await tag({}))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await tag({ base64: jpeg.toString('base64'), url: 'http://example.com/x.jpg' }))).toEqual(['BAD_USER_INPUT']);
    // URL fetching is on in this app, but loopback is not a public address.
    expect(errorCodes(await tag({ url: `${t.url}/healthz` }))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await tag({ url: 'file:///etc/passwd' }))).toEqual(['BAD_USER_INPUT']);
    const four = Array.from({ length: 4 }, () => ({ base64: jpeg.toString('base64') }));
    const many = await gql(t.url, 'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i) { index } }', { v: vocabId, i: four }, tenant.clientKey);
    expect(errorCodes(many)).toEqual(['BAD_USER_INPUT']);
    for (const o of [{ threshold: 0 }, { threshold: 1 }, { topK: -1 }, { minScore: 2 }, { language: 'not a language!' }]) {
      expect(errorCodes(await tag({ base64: jpeg.toString('base64') }, o))).toEqual(['BAD_USER_INPUT']);
    }
  });

  it('refuses to tag against an empty vocabulary or an unknown one', async () => {
    expect(errorCodes(await gql(t.url, TAG_IMAGE, { v: emptyVocabId, image: { base64: jpeg.toString('base64') } }, tenant.clientKey))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await gql(t.url, TAG_IMAGE, { v: '00000000-0000-4000-8000-000000000000', image: { base64: jpeg.toString('base64') } }, tenant.clientKey))).toEqual(['NOT_FOUND']);
  });

  it('uses the new revision right after an edit', async () => {
    const before = (await tag({ base64: jpeg.toString('base64') }, { includeAll: true })).data!.tagImage;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "hamster" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
    const after = (await tag({ base64: jpeg.toString('base64') }, { includeAll: true })).data!.tagImage;
    expect(after.revision).toBeGreaterThan(before.revision);
    expect(after.scores.map((s: any) => s.name)).toContain('hamster');
    // Scores of the unchanged tags do not move.
    for (const s of before.scores) expect(after.scores.find((x: any) => x.name === s.name).score).toBeCloseTo(s.score, 5);
  });
});
