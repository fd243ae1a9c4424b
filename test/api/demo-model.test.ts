/**
 * The demo pack announces itself: modelInfo.randomWeights, a DEMO_MODEL warning in the
 * `extensions` of every answer that tags images (and of no other), and `npm start`'s banner.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';
import { startServerProcess } from '../support/server-process.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const DEMO = { code: 'DEMO_MODEL', message: expect.stringMatching(/random weights.*npx omnitag model install/) };

describe('the demo pack (packs/tiny, random weights)', () => {
  let api: TestApp;
  let t: TestTenant;
  let vocab: string;
  let image: string;
  beforeAll(async () => {
    api = await startTestApp();
    t = await createTenantWithKeys(api.url, 'Demo');
    const v = await gql(api.url, 'mutation { createVocabulary(input: { name: "v", fromBuiltin: true }) { id } }', {}, t.adminKey);
    vocab = v.data!.createVocabulary.id;
    image = (await sharp({ create: { width: 64, height: 48, channels: 3, background: '#a50' } }).jpeg().toBuffer()).toString('base64');
  });
  afterAll(() => api?.stop());

  it('says so in modelInfo', async () => {
    const r = await gql(api.url, '{ modelInfo { packName randomWeights } }', {}, t.clientKey);
    expect(r.data!.modelInfo).toEqual({ packName: 'omnitag-tiny-random', randomWeights: true });
    expect(r.extensions?.warnings).toBeUndefined(); // not a tagging answer
  });

  it('puts a DEMO_MODEL warning on tagImage and tagImages answers', async () => {
    const one = await gql(api.url, 'mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { topK: 3, threshold: 0.0001 }) { tags { name } } }', { v: vocab, img: image }, t.clientKey);
    expect(one.errors).toBeUndefined();
    expect(one.data!.tagImage.tags).toHaveLength(3);
    expect(one.extensions?.warnings).toEqual([DEMO]);
    const many = await gql(api.url, 'mutation($v: ID!, $img: String!) { tagImages(vocabularyId: $v, images: [{ base64: $img }, { base64: $img }]) { index } }', { v: vocab, img: image }, t.clientKey);
    expect(many.data!.tagImages).toHaveLength(2);
    expect(many.extensions?.warnings).toEqual([DEMO]);
  });

  it('finds tagging fields behind aliases and fragments, and warns once', async () => {
    const r = await gql(
      api.url,
      'mutation($v: ID!, $img: String!) { ...F } fragment F on Mutation { first: tagImage(vocabularyId: $v, image: { base64: $img }) { revision } ... on Mutation { second: tagImage(vocabularyId: $v, image: { base64: $img }) { revision } } }',
      { v: vocab, img: image },
      t.clientKey,
    );
    expect(r.errors).toBeUndefined();
    expect(r.extensions?.warnings).toEqual([DEMO]);
  });

  it('puts it on the library’s scores too: a stored image, a listing, a search', async () => {
    const stored = await gql(api.url, 'mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { store: true }) { stored { image { id } } } }', { v: vocab, img: image }, t.clientKey);
    expect(stored.errors).toBeUndefined();
    const id = stored.data!.tagImage.stored.image.id;
    for (const [query, variables] of [
      ['query($id: ID!) { image(id: $id) { id } }', { id }],
      ['query($v: ID!) { found: images(vocabularyId: $v) { totalCount } }', { v: vocab }],
      ['{ searchImages(text: "a red panda") { hits { score } } }', {}],
    ] as const) {
      const r = await gql(api.url, query, variables, t.clientKey);
      expect(r.errors).toBeUndefined();
      expect(r.extensions?.warnings).toEqual([DEMO]);
    }
  });

  it('leaves other operations, and failed tagging, without the warning', async () => {
    const list = await gql(api.url, '{ vocabularies(first: 5) { totalCount } }', {}, t.clientKey);
    expect(list.data!.vocabularies.totalCount).toBe(1);
    expect(list.extensions).toBeUndefined();
    const bad = await gql(api.url, 'mutation($v: ID!) { tagImage(vocabularyId: $v, image: { base64: "bm90IGFuIGltYWdl" }) { revision } }', { v: vocab }, t.clientKey);
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_IMAGE');
    expect(bad.extensions?.warnings).toBeUndefined();
  });
});

describe('npm start on the demo pack', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'omnitag-demo-banner-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('prints the demo line with the install command, and logs the warning', async () => {
    const server = await startServerProcess({ OMNITAG_DATA_DIR: dataDir, OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY });
    try {
      await expect.poll(() => server.output(), { timeout: 10_000 }).toMatch(/Demo model: .*random weights.*`npx omnitag model install`/);
      // the JSON log at warn (the test's LOG_LEVEL) has it too, with its code
      const logged = server
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { code?: string; msg?: string });
      expect(logged.some((l) => l.code === 'DEMO_MODEL' && /npx omnitag model install/.test(l.msg ?? ''))).toBe(true);
    } finally {
      await server.stop();
    }
  });
});
