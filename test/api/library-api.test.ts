import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';
import { base64Of, noisePng } from '../library/helpers.ts';

const STORE = `mutation($v: ID!, $img: String!, $ext: String) {
  tagImage(vocabularyId: $v, image: { base64: $img, externalId: $ext }, options: { store: true, includeAll: true }) {
    revision scores { tag { id name } score }
    stored { created image { id externalId sha256 format width height byteSize createdAt thumbnail encoding { dtype tokens dim bytes current } } }
  }
}`;

const IMAGES = `query($v: ID!, $f: ImageFilter, $first: Int, $after: String) {
  images(vocabularyId: $v, filter: $f, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id externalId } score { score logit passed revision tag { name } } }
  }
}`;

/** The library over real HTTP: store, duplicates, reads, rankings, search, deletion, quota, usage. */
describe(`image library API (${databaseMode} database)`, () => {
  let t: TestApp;
  let a: TestTenant;
  let vocab: string;
  const pngs: Uint8Array[] = [];
  const asA = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, a.clientKey);
  const asAdmin = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, a.adminKey);
  const encoderRuns = () => t.app.services.engine.stats().runs.imageEncoder;

  beforeAll(async () => {
    // float32 encodings: stored images re-score exactly as they were scored
    t = await startTestApp({ OMNITAG_LIBRARY_ENCODING: 'float32', OMNITAG_LIBRARY_SCORE_FLOOR: '0' });
    a = await createTenantWithKeys(t.url, 'Library A');
    vocab = (await asAdmin('mutation { createVocabulary(input: { name: "Pets" }) { id } }')).data!.createVocabulary.id;
    const added = await asAdmin('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog" }, { name: "red panda" }]) { results { ok } } }', { v: vocab });
    expect(added.errors).toBeUndefined();
    for (let i = 0; i < 5; i++) pngs.push(await noisePng(100 + i, 40 + i, 30));
  }, 120_000);
  afterAll(() => t?.stop());

  it('stores an image with its facts and results, and reuses a duplicate without running the encoder', async () => {
    const first = await asA(STORE, { v: vocab, img: base64Of(pngs[0]!), ext: 'photo-0' });
    expect(first.errors).toBeUndefined();
    const stored = first.data!.tagImage.stored;
    expect(stored.created).toBe(true);
    expect(stored.image).toMatchObject({
      externalId: 'photo-0',
      sha256: createHash('sha256').update(pngs[0]!).digest('hex'),
      format: 'png',
      width: 40,
      height: 30,
      byteSize: pngs[0]!.byteLength,
      encoding: { dtype: 'FLOAT32', tokens: 10, dim: 64, bytes: 10 * 64 * 4, current: true },
    });
    expect(stored.image.thumbnail).toMatch(/^data:image\/webp;base64,/);

    const runs = encoderRuns();
    const again = await gql(t.url, `mutation($v: ID!, $img: String!) { tagImages(vocabularyId: $v, images: [{ base64: $img }], options: { store: true, includeAll: true }) { result { scores { tag { id } score } stored { created image { id } } } error { code } } }`, { v: vocab, img: base64Of(pngs[0]!) }, a.clientKey);
    expect(again.errors).toBeUndefined();
    const dup = again.data!.tagImages[0].result;
    expect(dup.stored).toEqual({ created: false, image: { id: stored.image.id } });
    expect(encoderRuns()).toBe(runs);
    // scored from the stored float32 encoding: the same scores
    const byTag = new Map(first.data!.tagImage.scores.map((s: any) => [s.tag.id, s.score]));
    expect(dup.scores).toHaveLength(byTag.size);
    for (const s of dup.scores) expect(Math.abs(s.score - (byTag.get(s.tag.id) as number))).toBeLessThan(1e-6);

    // the same external id with other bytes: a typed conflict, nothing stored
    const clash = await asA(STORE, { v: vocab, img: base64Of(pngs[1]!), ext: 'photo-0' });
    expect(errorCodes(clash)).toEqual(['CONFLICT']);
    expect(clash.errors![0]!.extensions).toMatchObject({ field: 'externalId' });
    // externalId without store, and a bad one
    expect(errorCodes(await asA('mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img, externalId: "x" }) { revision } }', { v: vocab, img: base64Of(pngs[1]!) }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await asA(STORE, { v: vocab, img: base64Of(pngs[1]!), ext: 'x'.repeat(257) }))).toEqual(['BAD_USER_INPUT']);

    const read = await asA(`query($id: ID!) { image(id: $id) { id externalId results { vocabulary { id name } revision current scoreFloor tags { tag { name } score logit passed } } } }`, { id: stored.image.id });
    expect(read.errors).toBeUndefined();
    const [result] = read.data!.image.results;
    expect(result).toMatchObject({ vocabulary: { id: vocab, name: 'Pets' }, revision: first.data!.tagImage.revision, current: true, scoreFloor: 0 });
    expect(result.tags).toHaveLength(3);
    for (const s of result.tags) expect(s.score).toBeCloseTo(1 / (1 + Math.exp(-s.logit)), 6);
    expect(result.tags.map((s: any) => s.score)).toEqual([...result.tags.map((s: any) => s.score)].sort((x, y) => y - x));
  });

  it('ranks a vocabulary’s images by a tag with stable cursors and filters; newest first without a tag', async () => {
    for (let i = 1; i < 5; i++) expect((await asA(STORE, { v: vocab, img: base64Of(pngs[i]!), ext: `photo-${i}` })).errors).toBeUndefined();
    const all = await asA(IMAGES, { v: vocab, f: { tag: 'Cat' }, first: 50 });
    expect(all.errors).toBeUndefined();
    const ranked = all.data!.images.edges;
    expect(ranked).toHaveLength(5);
    const scores = ranked.map((e: any) => e.score.score);
    expect(scores).toEqual([...scores].sort((x: number, y: number) => y - x));
    expect(new Set(scores).size).toBe(5); // the tiny pack tells these images apart
    // two at a time: the same order
    const paged: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: any = (await asA(IMAGES, { v: vocab, f: { tag: 'cat' }, first: 2, after })).data!.images;
      paged.push(...page.edges.map((e: any) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(paged).toEqual(ranked.map((e: any) => e.node.id));
    // minScore: exactly those at or above it
    const mid = scores[2];
    const over = (await asA(IMAGES, { v: vocab, f: { tag: 'cat', minScore: mid } })).data!.images;
    expect(over.totalCount).toBe(3);
    const passed = (await asA(IMAGES, { v: vocab, f: { tag: 'cat', passed: true } })).data!.images;
    expect(passed.edges.map((e: any) => e.node.id)).toEqual(ranked.filter((e: any) => e.score.passed).map((e: any) => e.node.id));
    const one = (await asA(IMAGES, { v: vocab, f: { externalId: 'photo-3' } })).data!.images;
    expect(one.edges.map((e: any) => e.node.externalId)).toEqual(['photo-3']);
    const newest = (await asA(IMAGES, { v: vocab })).data!.images.edges.map((e: any) => e.node.externalId);
    expect(newest).toEqual(['photo-4', 'photo-3', 'photo-2', 'photo-1', 'photo-0']);
    const newestPaged: string[] = [];
    for (let after: string | null = null; ; ) {
      const page: any = (await asA(IMAGES, { v: vocab, first: 2, after })).data!.images;
      newestPaged.push(...page.edges.map((e: any) => e.node.externalId));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(newestPaged).toEqual(newest);
    expect(errorCodes(await asA(IMAGES, { v: vocab, f: { minScore: 0.5 } }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await asA(IMAGES, { v: vocab, f: { tag: 'no such tag' } }))).toEqual(['NOT_FOUND']);
    expect(errorCodes(await asA(IMAGES, { v: vocab, f: { tag: 'cat' }, after: 'bm9wZQ' }))).toEqual(['BAD_USER_INPUT']);
  });

  it('searches the stored encodings for a concept: ranked, and equal to tagging with that concept as a tag', async () => {
    const runs = encoderRuns();
    const r = await asA(`query($v: ID) { searchImages(vocabularyId: $v, text: "  red   panda ", first: 3) { text threshold describedBy descriptions scanned skipped hits { image { id externalId } score logit passed } } }`, { v: null });
    expect(r.errors).toBeUndefined();
    const s = r.data!.searchImages;
    expect(s).toMatchObject({ text: 'red panda', threshold: 0.5, describedBy: 'template', descriptions: 51, scanned: 5, skipped: 0 });
    expect(s.hits).toHaveLength(3);
    expect(s.hits.map((h: any) => h.score)).toEqual([...s.hits.map((h: any) => h.score)].sort((x: number, y: number) => y - x));
    expect(encoderRuns()).toBe(runs);
    // the vocabulary's tag "red panda" has the same template descriptions: its stored scores are the search's
    const asTag = (await asA(IMAGES, { v: vocab, f: { tag: 'red panda' }, first: 3 })).data!.images.edges;
    expect(s.hits.map((h: any) => h.image.id)).toEqual(asTag.map((e: any) => e.node.id));
    s.hits.forEach((h: any, i: number) => expect(Math.abs(h.logit - asTag[i].score.logit)).toBeLessThan(1e-5));
    // no tag was added
    const tags = (await asA('query($v: ID!) { vocabulary(id: $v) { tags { totalCount } } }', { v: vocab })).data!.vocabulary.tags.totalCount;
    expect(tags).toBe(3);
    expect(errorCodes(await asA('{ searchImages(text: "") { scanned } }'))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await asA('{ searchImages(text: "\\"quoted\\" <b>") { scanned } }'))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await asA('{ searchImages(text: "cat", first: 0) { scanned } }'))).toEqual(['BAD_USER_INPUT']);
  });

  it('deletes by id and by external id, leaving nothing behind; counts stored images in usage; keeps the quota', async () => {
    const list = (await asA(IMAGES, { v: vocab })).data!.images.edges.map((e: any) => e.node);
    const victim = list.find((n: any) => n.externalId === 'photo-1');
    const unknown = '00000000-0000-4000-8000-000000000000';
    const del = await asA('mutation($ids: [ID!]!) { deleteImages(ids: $ids) { id deleted } }', { ids: [victim.id, unknown, 'garbage'] });
    expect(del.data!.deleteImages).toEqual([
      { id: victim.id, deleted: true },
      { id: unknown, deleted: false },
      { id: 'garbage', deleted: false },
    ]);
    const byExt = await asA('mutation { deleteImagesByExternalId(externalIds: ["photo-2", "nope"]) { id deleted } }');
    expect(byExt.data!.deleteImagesByExternalId).toEqual([
      { id: 'photo-2', deleted: true },
      { id: 'nope', deleted: false },
    ]);
    expect(errorCodes(await asA('query($id: ID!) { image(id: $id) { id } }', { id: victim.id }))).toEqual(['NOT_FOUND']);
    const p = t.app.db.prisma;
    expect(await p.libraryImage.count({ where: { tenantId: a.id } })).toBe(3);
    expect(await p.imageResult.count({ where: { tenantId: a.id } })).toBe(3);
    expect(await p.imageTagScore.count({ where: { tenantId: a.id } })).toBe(9);

    // five new images stored (the duplicates not counted)
    await expect.poll(async () => (await asAdmin('query($from: DateTime!, $to: DateTime!) { usage(from: $from, to: $to) { storedImages } }', { from: new Date(Date.now() - 86_400_000).toISOString(), to: new Date(Date.now() + 86_400_000).toISOString() })).data!.usage[0]?.storedImages, { timeout: 10_000 }).toBe(5);

    // quota: 4 images; 3 stored, one more fits, the next is refused; duplicates still pass
    const set = await gql(t.url, 'mutation($t: ID!) { setTenantLimits(tenantId: $t, input: { maxStoredImages: 4 }) { limits { maxStoredImages own } } }', { t: a.id }, PLATFORM_KEY);
    expect(set.data!.setTenantLimits.limits).toEqual({ maxStoredImages: 4, own: ['maxStoredImages'] });
    await new Promise((r) => setTimeout(r, 50));
    expect((await asA(STORE, { v: vocab, img: base64Of(pngs[1]!), ext: null })).errors).toBeUndefined();
    const over = await asA(STORE, { v: vocab, img: base64Of(await noisePng(999)), ext: null });
    expect(errorCodes(over)).toEqual(['QUOTA_EXCEEDED']);
    expect(over.errors![0]!.extensions).toMatchObject({ quota: 'maxStoredImages', max: 4 });
    expect((await asA(STORE, { v: vocab, img: base64Of(pngs[0]!), ext: null })).data!.tagImage.stored.created).toBe(false);
    expect(await p.libraryImage.count({ where: { tenantId: a.id } })).toBe(4);

    // deleting the vocabulary removes its results; the images stay
    await asAdmin('mutation($v: ID!) { deleteVocabulary(id: $v) }', { v: vocab });
    expect(await p.imageResult.count({ where: { tenantId: a.id } })).toBe(0);
    expect(await p.imageTagScore.count({ where: { tenantId: a.id } })).toBe(0);
  });

  it('stores concurrent uploads of the same bytes once, and never lets concurrent new images pass the quota together', async () => {
    const b = await createTenantWithKeys(t.url, 'Library B');
    const asB = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, b.clientKey);
    const v = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Race" }) { id } }', undefined, b.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "kite" }]) { results { ok } } }', { v }, b.adminKey);
    const same = base64Of(await noisePng(500));
    const racing = await Promise.all(Array.from({ length: 4 }, () => asB(STORE, { v, img: same, ext: null })));
    expect(racing.map((r) => r.errors)).toEqual([undefined, undefined, undefined, undefined]);
    const ids = new Set(racing.map((r) => r.data!.tagImage.stored.image.id));
    expect(ids.size).toBe(1);
    expect(racing.filter((r) => r.data!.tagImage.stored.created)).toHaveLength(1);

    await gql(t.url, 'mutation($t: ID!) { setTenantLimits(tenantId: $t, input: { maxStoredImages: 3 }) { id } }', { t: b.id }, PLATFORM_KEY);
    const fresh = await Promise.all([600, 601, 602, 603].map((i) => noisePng(i)));
    const together = await Promise.all(fresh.map((png) => asB(STORE, { v, img: base64Of(png), ext: null })));
    expect(together.filter((r) => !r.errors)).toHaveLength(2);
    expect(together.filter((r) => r.errors).map((r) => errorCodes(r)[0])).toEqual(['QUOTA_EXCEEDED', 'QUOTA_EXCEEDED']);
    expect(await t.app.db.prisma.libraryImage.count({ where: { tenantId: b.id } })).toBe(3);

    // a cursor whose image was deleted since still pages on from its position
    const ranked = (await asB(IMAGES, { v, f: { tag: 'kite' } })).data!.images.edges.map((e: any) => e.node.id);
    expect(ranked).toHaveLength(3);
    const top = (await asB(IMAGES, { v, f: { tag: 'kite' }, first: 1 })).data!.images;
    await asB('mutation($ids: [ID!]!) { deleteImages(ids: $ids) { deleted } }', { ids: [ranked[0]] });
    const rest = await asB(IMAGES, { v, f: { tag: 'kite' }, first: 5, after: top.pageInfo.endCursor });
    expect(rest.errors).toBeUndefined();
    expect(rest.data!.images.edges.map((e: any) => e.node.id)).toEqual(ranked.slice(1));
  });
});
