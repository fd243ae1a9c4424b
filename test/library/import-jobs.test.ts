import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';
import { eventually } from '../support/eventually.ts';

const IMPORT = `mutation($v: ID!, $images: [ImageInput!]!) {
  importImages(vocabularyId: $v, images: $images) { id state total pending stagedBytes }
}`;
const JOB = `query($id: ID!) {
  importJob(id: $id) {
    id state total pending running succeeded failed cancelled progress stagedBytes error finishedAt
    items(first: 50) { totalCount edges { node { index state attempts externalId byteSize imageId duplicate errorCode error } } }
  }
}`;

/** A small JPEG of one colour: different colours, different bytes. */
const jpeg = async (color: string) => (await sharp({ create: { width: 40 + color.length, height: 30, channels: 3, background: color } }).jpeg().toBuffer()).toString('base64');

const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000) => eventually(probe, what, timeoutMs, 50);

const finished = (t: TestApp, key: string, id: string) =>
  until(`import ${id} to finish`, async () => {
    const job = (await gql(t.url, JOB, { id }, key)).data?.importJob;
    return job && /SUCCEEDED|FAILED|CANCELLED/.test(job.state) ? job : undefined;
  });

describe(`import jobs over HTTP (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let other: TestTenant;
  let vocabId: string;

  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_JOB_LEASE_MS: '2000', OMNITAG_LIBRARY_SCORE_FLOOR: '0' });
    [tenant, other] = await Promise.all([createTenantWithKeys(t.url, 'Importer'), createTenantWithKeys(t.url, 'Other')]);
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Pets" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
  }, 120_000);

  afterAll(() => t?.stop());

  it('stores each image once, reports a corrupt one with its code, and keeps no staged bytes', async () => {
    const [red, green, blue] = await Promise.all(['#c33', '#3c3', '#33c'].map(jpeg));
    const corrupt = Buffer.from('\xff\xd8\xff\xe0 this is not really a JPEG', 'latin1').toString('base64');
    const queued = await gql(t.url, IMPORT, {
      v: vocabId,
      images: [{ base64: red, externalId: 'red' }, { base64: corrupt, externalId: 'broken' }, { base64: green }, { base64: red }, { base64: blue, externalId: 'blue' }, { base64: 'not base64 at all!' }],
    }, tenant.clientKey);
    expect(queued.errors).toBeUndefined();
    const id = queued.data!.importImages.id;
    expect(queued.data!.importImages.total).toBe(6);
    const job = await finished(t, tenant.clientKey, id);
    expect(job).toMatchObject({ state: 'FAILED', total: 6, succeeded: 4, failed: 2, cancelled: 0, pending: 0, running: 0, progress: 1, stagedBytes: 0, error: '2 of 6 images failed' });
    const items = job.items.edges.map((e: any) => e.node);
    expect(items.map((i: any) => i.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(items.map((i: any) => i.state)).toEqual(['SUCCEEDED', 'FAILED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'FAILED']);
    expect(items[1].errorCode).toMatch(/BAD_IMAGE|UNSUPPORTED_FORMAT/);
    expect(items[5].errorCode).toBe('BAD_USER_INPUT');
    // the same bytes twice: one stored image, its encoding reused
    expect(items[3].imageId).toBe(items[0].imageId);
    expect([items[0].duplicate, items[3].duplicate]).toEqual([false, true]);
    expect(new Set(items.filter((i: any) => i.imageId).map((i: any) => i.imageId)).size).toBe(3);
    const prisma = t.app.db.prisma;
    expect(await prisma.libraryImage.count({ where: { tenantId: tenant.id } })).toBe(3);
    expect(await prisma.libraryImage.findFirst({ where: { tenantId: tenant.id, externalId: 'blue' }, select: { id: true } })).toEqual({ id: items[4].imageId });
    // each stored image has its result for the vocabulary; nothing of the uploads is left
    expect(await prisma.imageResult.count({ where: { tenantId: tenant.id, vocabularyId: vocabId } })).toBe(3);
    expect(await prisma.libraryJobItem.count({ where: { jobId: id, data: { not: null } } })).toBe(0);
  });

  it('answers NOT_FOUND for another tenant\'s job, a missing one and a malformed id alike', async () => {
    const queued = await gql(t.url, IMPORT, { v: vocabId, images: [{ base64: await jpeg('#777') }] }, tenant.clientKey);
    const id = queued.data!.importImages.id;
    for (const [key, jobId] of [[other.clientKey, id], [tenant.clientKey, '00000000-0000-4000-8000-000000000000'], [tenant.clientKey, 'nope']] as const) {
      expect(errorCodes(await gql(t.url, JOB, { id: jobId }, key))).toEqual(['NOT_FOUND']);
      expect(errorCodes(await gql(t.url, 'mutation($id: ID!) { cancelImportJob(id: $id) { state } }', { id: jobId }, key))).toEqual(['NOT_FOUND']);
    }
    // nor can a tenant import into another's vocabulary
    expect(errorCodes(await gql(t.url, IMPORT, { v: vocabId, images: [{ base64: await jpeg('#777') }] }, other.clientKey))).toEqual(['NOT_FOUND']);
    await finished(t, tenant.clientKey, id);
  });

  it('refuses URLs when URL fetching is off, per image', async () => {
    const queued = await gql(t.url, IMPORT, { v: vocabId, images: [{ url: 'http://example.com/a.jpg' }] }, tenant.clientKey);
    const job = await finished(t, tenant.clientKey, queued.data!.importImages.id);
    expect(job.state).toBe('FAILED');
    expect(job.items.edges[0].node.errorCode).toBe('FORBIDDEN');
  });

  it('makes items wait for the tenant\'s image rate instead of failing them', async () => {
    const limited = await createTenantWithKeys(t.url, 'Limited');
    const v = (await gql(t.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, limited.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }]) { results { ok } } }', { v }, limited.adminKey);
    await gql(t.url, 'mutation($t: ID!) { setTenantLimits(tenantId: $t, input: { imagesPerMinute: 2 }) { id } }', { t: limited.id }, PLATFORM_KEY);
    const images = await Promise.all(['#a11', '#1a1', '#11a'].map(async (c) => ({ base64: await jpeg(c) })));
    const id = (await gql(t.url, IMPORT, { v, images }, limited.clientKey)).data!.importImages.id;
    const job = await until('two images in and one waiting', async () => {
      const j = (await gql(t.url, JOB, { id }, limited.clientKey)).data!.importJob;
      return j.succeeded === 2 && j.items.edges[2].node.errorCode === 'RATE_LIMITED' ? j : undefined;
    });
    expect(job).toMatchObject({ state: 'RUNNING', pending: 1, failed: 0 });
    expect(job.items.edges[2].node).toMatchObject({ state: 'PENDING', attempts: 0 });
    await gql(t.url, 'mutation($id: ID!) { cancelImportJob(id: $id) { state } }', { id }, limited.clientKey);
  });

  it('fails items over the tenant\'s stored-image quota, which does not renew by itself', async () => {
    const full = await createTenantWithKeys(t.url, 'Full');
    const v = (await gql(t.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, full.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }]) { results { ok } } }', { v }, full.adminKey);
    await gql(t.url, 'mutation($t: ID!) { setTenantLimits(tenantId: $t, input: { maxStoredImages: 1 }) { id } }', { t: full.id }, PLATFORM_KEY);
    const images = await Promise.all(['#b21', '#2b1'].map(async (c) => ({ base64: await jpeg(c) })));
    const id = (await gql(t.url, IMPORT, { v, images }, full.clientKey)).data!.importImages.id;
    const job = await finished(t, full.clientKey, id);
    expect(job).toMatchObject({ state: 'FAILED', succeeded: 1, failed: 1 });
    // the two run at once (two worker slots): whichever came second is over the quota
    const failed = job.items.edges.map((e: any) => e.node).filter((n: any) => n.state === 'FAILED');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ errorCode: 'QUOTA_EXCEEDED', attempts: 1, imageId: null });
    expect(await t.app.db.prisma.libraryImage.count({ where: { tenantId: full.id } })).toBe(1);
  });
});

describe(`import limits and cancellation (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;
  let image: string;

  beforeAll(async () => {
    image = await jpeg('#4a8');
    const bytes = Buffer.from(image, 'base64').length;
    // No worker here: imports stay queued, holding their bytes, until cancelled.
    t = await startTestApp({ OMNITAG_LIBRARY_WORKER: 'false', OMNITAG_IMPORT_MAX_JOB_BYTES: String(3 * bytes), OMNITAG_IMPORT_MAX_PENDING_BYTES: String(4 * bytes) });
    tenant = await createTenantWithKeys(t.url, 'Bounded');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
  }, 120_000);

  afterAll(() => t?.stop());

  const jobs = () => t.app.db.prisma.libraryJob.count({ where: { tenantId: tenant.id } });

  it('refuses an import over the bytes of one job, queuing nothing', async () => {
    const r = await gql(t.url, IMPORT, { v: vocabId, images: [1, 2, 3, 4].map(() => ({ base64: image })) }, tenant.clientKey);
    expect(errorCodes(r)).toEqual(['PAYLOAD_TOO_LARGE']);
    expect(await jobs()).toBe(0);
  });

  it('refuses an import over the tenant\'s pending bytes, and takes it once a cancellation freed them', async () => {
    const first = await gql(t.url, IMPORT, { v: vocabId, images: [1, 2, 3].map(() => ({ base64: image })) }, tenant.clientKey);
    expect(first.data!.importImages).toMatchObject({ state: 'QUEUED', pending: 3, stagedBytes: 3 * Buffer.from(image, 'base64').length });
    const refused = await gql(t.url, IMPORT, { v: vocabId, images: [1, 2].map(() => ({ base64: image })) }, tenant.clientKey);
    expect(errorCodes(refused)).toEqual(['QUOTA_EXCEEDED']);
    expect(refused.errors![0]!.extensions).toMatchObject({ quota: 'pendingImportBytes' });
    expect(await jobs()).toBe(1);
    const cancelled = await gql(t.url, 'mutation($id: ID!) { cancelImportJob(id: $id) { state pending cancelled stagedBytes progress } }', { id: first.data!.importImages.id }, tenant.clientKey);
    expect(cancelled.data!.cancelImportJob).toEqual({ state: 'CANCELLED', pending: 0, cancelled: 3, stagedBytes: 0, progress: 1 });
    expect(await t.app.db.prisma.libraryJobItem.count({ where: { tenantId: tenant.id, data: { not: null } } })).toBe(0);
    const again = await gql(t.url, IMPORT, { v: vocabId, images: [1, 2].map(() => ({ base64: image })) }, tenant.clientKey);
    expect(again.errors).toBeUndefined();
    expect(await jobs()).toBe(2);
  });

  it('coalesces quick edits of a vocabulary into one re-tagging job toward the newest revision', async () => {
    const RETAG = 'query($v: ID!) { vocabulary(id: $v) { revision retagging { state targetRevision imagesBehind imagesTotal } } }';
    const v = (await gql(t.url, 'mutation { createVocabulary(input: { name: "edited" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }]) { results { ok } } }', { v }, tenant.adminKey);
    // no stored image yet: edits queue nothing
    expect((await gql(t.url, RETAG, { v }, tenant.clientKey)).data!.vocabulary.retagging).toBeNull();
    const stored = await gql(t.url, 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }, options: { store: true }) { revision } }', { v, i: image }, tenant.clientKey);
    expect(stored.errors).toBeUndefined();
    for (const name of ['dog', 'owl', 'fox']) {
      await gql(t.url, 'mutation($v: ID!, $n: String!) { addTags(vocabularyId: $v, tags: [{ name: $n }]) { results { ok } } }', { v, n: name }, tenant.adminKey);
    }
    const after = (await gql(t.url, RETAG, { v }, tenant.clientKey)).data!.vocabulary;
    expect(after.revision).toBe(stored.data!.tagImage.revision + 3);
    expect(after.retagging).toEqual({ state: 'QUEUED', targetRevision: after.revision, imagesBehind: 1, imagesTotal: 1 });
    expect(await t.app.db.prisma.libraryJob.count({ where: { vocabularyId: v, kind: 'RETAG' } })).toBe(1);
  });
});
