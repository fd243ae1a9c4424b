import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const WITH_MAPS = `mutation($v: ID!, $img: String!, $size: Int, $layer: Int) {
  tagImage(vocabularyId: $v, image: { base64: $img }, options: { threshold: 0.000000001 }) {
    tags { name explain { heatmap { width height values cls layer } one: heatmap(layer: $layer) { values cls layer } heatmapPng(size: $size) } }
    scores { name explain { heatmap { cls } } }
  }
}`;

describe(`heat maps over HTTP (${databaseMode} database)`, () => {
  let t: TestApp;
  let a: TestTenant;
  let b: TestTenant;
  let vocabA: string;
  let image: string;
  const heatmapRuns = () => t.app.services.engine.stats().runs.heatmapDecoder;

  beforeAll(async () => {
    t = await startTestApp();
    a = await createTenantWithKeys(t.url, 'Maps A');
    b = await createTenantWithKeys(t.url, 'Maps B');
    vocabA = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Pets" }) { id } }', {}, a.adminKey)).data!.createVocabulary.id;
    const add = await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog", descriptions: ["a loyal pet dog"] }, { name: "parrot" }]) { results { ok } } }', { v: vocabA }, a.adminKey);
    expect(add.data!.addTags.results.every((r: any) => r.ok)).toBe(true);
    // a 320×240 picture: the overlay keeps its aspect ratio
    const png = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 30, g: 90, b: 160 } } })
      .composite([{ input: { create: { width: 100, height: 80, channels: 3, background: { r: 250, g: 240, b: 10 } } }, left: 200, top: 20 }])
      .png()
      .toBuffer();
    image = png.toString('base64');
  });
  afterAll(() => t?.stop());

  it('says in modelInfo that the pack has heat maps', async () => {
    const r = await gql(t.url, '{ modelInfo { heatmaps imageSize } }', {}, a.clientKey);
    expect(r.data!.modelInfo.heatmaps).toBe(true);
  });

  it('computes nothing for maps unless the selection reads them', async () => {
    const before = heatmapRuns();
    const r = await gql(t.url, 'mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { threshold: 0.000000001, explain: true }) { tags { name explanation { weight } } } }', { v: vocabA, img: image }, a.clientKey);
    expect(r.errors).toBeUndefined();
    expect(r.data!.tagImage.tags).toHaveLength(3);
    expect(heatmapRuns()).toBe(before);
  });

  it('leaves out maps that @skip or @include leave out, and makes those they keep', async () => {
    const query = 'mutation($v: ID!, $img: String!, $maps: Boolean!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { threshold: 0.000000001, topK: 1 }) { tags { name explain @include(if: $maps) { heatmap { cls } } ...M @skip(if: true) } } } fragment M on TagScore { explain { heatmap { cls } } }';
    const before = heatmapRuns();
    const off = await gql(t.url, query, { v: vocabA, img: image, maps: false }, a.clientKey);
    expect(off.errors).toBeUndefined();
    expect(off.data!.tagImage.tags[0].explain).toBeUndefined();
    expect(heatmapRuns()).toBe(before);
    const on = await gql(t.url, query, { v: vocabA, img: image, maps: true }, a.clientKey);
    expect(on.errors).toBeUndefined();
    expect(on.data!.tagImage.tags[0].explain.heatmap.cls).toBeGreaterThan(0);
    expect(heatmapRuns()).toBe(before + 1);
  });

  it('returns a normalised grid, the CLS share, one layer and a PNG overlay of the asked size for returned tags only', async () => {
    const before = heatmapRuns();
    const r = await gql(t.url, WITH_MAPS, { v: vocabA, img: image, size: 64, layer: 1 }, a.clientKey);
    expect(r.errors).toBeUndefined();
    expect(heatmapRuns()).toBe(before + 1); // one pass, for the returned tags together
    const info = t.app.services.engine.info.heatmaps!;
    for (const tag of r.data!.tagImage.tags) {
      const { heatmap, one, heatmapPng } = tag.explain;
      expect([heatmap.width, heatmap.height]).toEqual([info.width, info.height]);
      expect(heatmap.values).toHaveLength(info.width * info.height);
      expect(heatmap.values.reduce((x: number, y: number) => x + y, 0)).toBeCloseTo(1, 5);
      expect(heatmap.cls).toBeGreaterThanOrEqual(0);
      expect(heatmap.cls).toBeLessThanOrEqual(1);
      expect(heatmap.layer).toBeNull();
      expect(one.layer).toBe(1);
      expect(one.values).not.toEqual(heatmap.values);
      expect(heatmapPng).toMatch(/^data:image\/png;base64,/);
      const meta = await sharp(Buffer.from(heatmapPng.slice('data:image/png;base64,'.length), 'base64')).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 48]);
    }
    // the overlay is not the bare thumbnail: the map changes its pixels
    const bare = await sharp(Buffer.from(image, 'base64')).resize(64, 48).removeAlpha().raw().toBuffer();
    const drawn = await sharp(Buffer.from(r.data!.tagImage.tags[0].explain.heatmapPng.split(',')[1], 'base64')).removeAlpha().raw().toBuffer();
    expect(drawn.length).toBe(bare.length);
    expect(drawn.some((v, i) => Math.abs(v - bare[i]!) > 20)).toBe(true);
    // `scores` is null without includeAll
    expect(r.data!.tagImage.scores).toBeNull();
  });

  it('gives maps only to returned tags in scores', async () => {
    const r = await gql(t.url, 'mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { threshold: 0.000000001, topK: 1, includeAll: true }) { tags { name } scores { name explain { heatmap { cls } } } } }', { v: vocabA, img: image }, a.clientKey);
    expect(r.errors).toBeUndefined();
    const returned = r.data!.tagImage.tags.map((x: any) => x.name);
    expect(returned).toHaveLength(1);
    for (const s of r.data!.tagImage.scores) expect(s.explain === null).toBe(!returned.includes(s.name));
  });

  it('works through tagImages and fragments', async () => {
    const before = heatmapRuns();
    const r = await gql(
      t.url,
      `fragment Where on TagExplanation { heatmap { width } }
       mutation($v: ID!, $img: String!) { tagImages(vocabularyId: $v, images: [{ base64: $img }, { base64: $img }], options: { threshold: 0.000000001 }) { result { tags { explain { ...Where } } } } }`,
      { v: vocabA, img: image },
      a.clientKey,
    );
    expect(r.errors).toBeUndefined();
    expect(heatmapRuns()).toBe(before + 2);
    for (const o of r.data!.tagImages) for (const tag of o.result.tags) expect(tag.explain.heatmap.width).toBeGreaterThan(0);
  });

  it('refuses sizes and layers out of range with BAD_USER_INPUT', async () => {
    for (const [size, layer] of [[8, null], [4096, null], [64, 2], [64, -1]]) {
      const r = await gql(t.url, WITH_MAPS, { v: vocabA, img: image, size, layer }, a.clientKey);
      expect(errorCodes(r), `size ${size} layer ${layer}`).toContain('BAD_USER_INPUT');
    }
  });

  it('draws at most 32 overlays in one request, however they are asked for', async () => {
    // 11 images × 3 returned tags = 33 overlays: one too many; 10 × 3 = 30 pass
    const many = (n: number) =>
      gql(
        t.url,
        'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i, options: { threshold: 0.000000001 }) { result { tags { name explain { heatmapPng(size: 16) } } } } }',
        { v: vocabA, i: Array(n).fill({ base64: image }) },
        a.clientKey,
      );
    const over = await many(11);
    expect(errorCodes(over)).toContain('BAD_USER_INPUT');
    expect(over.errors!.find((e) => e.extensions?.code === 'BAD_USER_INPUT')!.message).toMatch(/at most 32 heat-map overlays/);
    const within = await many(10);
    expect(within.errors).toBeUndefined();
    expect(within.data!.tagImages.flatMap((r: any) => r.result.tags.map((tag: any) => tag.explain.heatmapPng))).toHaveLength(30);
    // aliases count too: the budget is the request's, not a field's
    const aliased = await gql(t.url, `mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { threshold: 0.000000001 }) { tags { explain { ${Array.from({ length: 11 }, (_, k) => `p${k}: heatmapPng(size: 16)`).join(' ')} } } } }`, { v: vocabA, img: image }, a.clientKey);
    expect(errorCodes(aliased)).toContain('BAD_USER_INPUT');
  });

  it('gives another tenant no maps of this tenant’s vocabulary', async () => {
    const before = heatmapRuns();
    const r = await gql(t.url, WITH_MAPS, { v: vocabA, img: image, size: 64, layer: 0 }, b.clientKey);
    expect(errorCodes(r)).toEqual(['NOT_FOUND']);
    expect(r.data ?? null).toBeNull();
    expect(heatmapRuns()).toBe(before);
  });
});
