import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.ts';
import type { InferenceEngine } from '../../src/inference/runtime/engine.ts';
import { createLogger } from '../../src/core/log.ts';
import { databaseMode } from '../support/database.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const TAG = 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision } }';
const TAG_MANY = 'mutation($v: ID!, $i: [ImageInput!]!) { tagImages(vocabularyId: $v, images: $i) { index error { code } } }';

describe(`usage records (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;
  let image: string;

  beforeAll(async () => {
    t = await startTestApp();
    tenant = await createTenantWithKeys(t.url, 'Counted');
    vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
    image = (await sharp({ create: { width: 64, height: 48, channels: 3, background: '#884422' } }).jpeg().toBuffer()).toString('base64');
  });
  afterAll(() => t?.stop());

  it('keeps the record of a request whose vocabulary is deleted right after it', async () => {
    const other = await createTenantWithKeys(t.url, 'Deletes');
    const v = (await gql(t.url, 'mutation { createVocabulary(input: { name: "short-lived" }) { id } }', {}, other.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "owl" }]) { results { ok } } }', { v }, other.adminKey);
    expect((await gql(t.url, TAG, { v, i: image }, other.clientKey)).errors).toBeUndefined();
    // deleted before the batch of usage records is written (they wait up to a second)
    expect((await gql(t.url, 'mutation($v: ID!) { deleteVocabulary(id: $v) }', { v }, other.adminKey)).errors).toBeUndefined();
    let runs: { vocabularyId: string | null; imageCount: number }[] = [];
    for (let i = 0; i < 50 && runs.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      runs = await t.app.db.prisma.taggingRun.findMany({ where: { tenantId: other.id } });
    }
    expect(runs.map((r) => [r.vocabularyId, r.imageCount])).toEqual([[v, 1]]);
  });

  it('records every tagging request before the server stops, also one whose client hung up', async () => {
    expect((await gql(t.url, TAG, { v: vocabId, i: image }, tenant.clientKey)).errors).toBeUndefined();
    const many = await gql(t.url, TAG_MANY, { v: vocabId, i: [{ base64: image }, { base64: Buffer.from('not an image').toString('base64') }] }, tenant.clientKey);
    expect(many.data!.tagImages.map((o: any) => o.error?.code ?? null)).toEqual([null, 'BAD_IMAGE']);

    // Hold the next scoring call until the server has begun to stop and its client has gone.
    const engine = t.app.services.engine as InferenceEngine & { scoreImages: InferenceEngine['scoreImages'] };
    const score = engine.scoreImages.bind(engine);
    let reached!: () => void;
    const scoring = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    engine.scoreImages = async (...args) => {
      reached();
      await gate;
      return score(...args);
    };
    const client = new AbortController();
    const hungUp = gql(t.url, TAG, { v: vocabId, i: image }, tenant.clientKey, client.signal).catch((e: Error) => e.name);
    await scoring;
    client.abort();
    expect(await hungUp).toBe('AbortError');
    const stopped = t.app.stop();
    await new Promise((r) => setTimeout(r, 300));
    release();
    await stopped;

    const again = new App(t.app.config, createLogger('silent'));
    await again.start();
    try {
      const runs = await again.db.prisma.taggingRun.findMany({ where: { tenantId: tenant.id } });
      // One batch may hold several runs, with one timestamp: compare them as a set.
      const counts = runs.map((r) => [r.vocabularyId, r.imageCount, r.failedCount]).sort((a, b) => Number(b[1]) - Number(a[1]) || Number(a[2]) - Number(b[2]));
      expect(counts).toEqual([
        [vocabId, 2, 1],
        [vocabId, 1, 0],
        [vocabId, 1, 1],
      ]);
    } finally {
      await again.stop();
    }
  });
});
