import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const IMPORT = 'mutation($v: ID!, $images: [ImageInput!]!) { importImages(vocabularyId: $v, images: $images) { id } }';
const JOB = 'query($id: ID!) { importJob(id: $id) { state items(first: 50) { edges { node { imageId } } } } }';
const RETAG = 'query($v: ID!) { vocabulary(id: $v) { revision retagging { state targetRevision imagesBehind imagesTotal } } }';

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Different images: a gradient and shapes, so the tiny pack's scores differ between them. */
async function photo(seed: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="72"><defs><linearGradient id="g"><stop offset="0" stop-color="#${(seed * 0x3a5f1).toString(16).padStart(6, '0').slice(-6)}"/><stop offset="1" stop-color="#fe3"/></linearGradient></defs><rect width="96" height="72" fill="url(#g)"/><circle cx="${20 + seed * 7}" cy="36" r="${10 + seed * 3}" fill="#123"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/**
 * One app storing encodings as `encoding`; images imported into a vocabulary, then edits; after
 * each, the stored results (re-scored in the background from the stored encodings) are compared
 * with a fresh scoring of the original bytes at the vocabulary's new revision.
 */
function retagSuite(encoding: 'float32' | 'float16') {
  describe(`re-tagging stored images after edits, ${encoding} encodings (${databaseMode} database)`, () => {
    let t: TestApp;
    let tenant: TestTenant;
    let vocabId: string;
    let photos: Buffer[];
    let imageIds: string[];
    /** Largest |stored logit − fresh logit| seen over the suite. */
    let drift = 0;

    beforeAll(async () => {
      t = await startTestApp({ OMNITAG_LIBRARY_ENCODING: encoding, OMNITAG_LIBRARY_SCORE_FLOOR: '0', OMNITAG_JOB_LEASE_MS: '2000' });
      tenant = await createTenantWithKeys(t.url, 'Retagger');
      vocabId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Pets" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
      await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog" }, { name: "parrot" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
      photos = await Promise.all([0, 1, 2, 3].map(photo));
      const id = (await gql(t.url, IMPORT, { v: vocabId, images: photos.map((p) => ({ base64: p.toString('base64') })) }, tenant.clientKey)).data!.importImages.id;
      const job = await until('the import', async () => {
        const j = (await gql(t.url, JOB, { id }, tenant.clientKey)).data!.importJob;
        return j.state === 'SUCCEEDED' ? j : undefined;
      });
      imageIds = job.items.edges.map((e: any) => e.node.imageId);
    }, 120_000);

    afterAll(async () => {
      // eslint-disable-next-line no-console
      console.info(`stored ${encoding} encodings: max |Δ logit| against fresh scoring ${drift.toExponential(2)}`);
      await t?.stop();
    });

    /** Waits for the re-tagging to reach the vocabulary's revision; returns what the vocabulary showed. */
    const caughtUp = () =>
      until('re-tagging to catch up', async () => {
        const v = (await gql(t.url, RETAG, { v: vocabId }, tenant.clientKey)).data!.vocabulary;
        return v.retagging?.state === 'SUCCEEDED' && v.retagging.targetRevision === v.revision && v.retagging.imagesBehind === 0 ? v : undefined;
      });

    /** Stored rows against a fresh scoring of each photo's bytes at the current revision. */
    async function compare(tolerance: number) {
      const { services, db } = t.app;
      const snap = await services.vocab.labelBanks.forVocabulary(tenant.id, vocabId);
      const fresh = await services.engine.scoreImages(photos, [snap.bank!]);
      for (const [k, imageId] of imageIds.entries()) {
        const result = await db.prisma.imageResult.findUnique({ where: { imageId_vocabularyId: { imageId, vocabularyId: vocabId } } });
        expect(result!.revision).toBe(snap.revision);
        const rows = await db.prisma.imageTagScore.findMany({ where: { imageId, vocabularyId: vocabId } });
        const stored = new Map(rows.map((r) => [r.tagId, r]));
        const scores = fresh[k]!.scores[0]!;
        expect(rows.length).toBe(snap.tags.length); // floor 0: every tag of the revision, no others
        for (let i = 0; i < snap.tags.length; i++) {
          const row = stored.get(snap.tags.at(i)!.id);
          expect(row, `stored score of ${snap.tags.at(i)!.name}`).toBeDefined();
          const d = Math.abs(row!.logit - scores.logits[i]!);
          drift = Math.max(drift, d);
          expect(d).toBeLessThanOrEqual(tolerance);
          expect(row!.passed).toBe(scores.passed[i] === 1);
        }
      }
    }

    // float32 encodings are exactly the encoder's output: only float rounding in the decoder.
    // float16 rounds each stored value (relative error ≤ 2^-11); the bound is what we measured
    // on the tiny pack with a margin, the printed figure the measurement.
    const tolerance = encoding === 'float32' ? 1e-6 : 5e-3;

    it('scores tags added later on stored images, from their encodings', async () => {
      const before = await t.app.db.prisma.imageTagScore.findMany({ where: { vocabularyId: vocabId }, orderBy: [{ imageId: 'asc' }, { tagId: 'asc' }] });
      const added = await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "owl" }, { name: "red panda" }]) { vocabulary { revision } } }', { v: vocabId }, tenant.adminKey);
      const revision = added.data!.addTags.vocabulary.revision;
      const v = await caughtUp();
      expect(v.retagging).toMatchObject({ targetRevision: revision, imagesTotal: 4 });
      await compare(tolerance);
      // unchanged tags were not scored again: their rows are those of before, revision included
      const after = new Map((await t.app.db.prisma.imageTagScore.findMany({ where: { vocabularyId: vocabId } })).map((r) => [`${r.imageId}/${r.tagId}`, r]));
      for (const r of before) expect(after.get(`${r.imageId}/${r.tagId}`)).toEqual(r);
    });

    it('re-scores a tag whose threshold or descriptions changed', async () => {
      const tags = (await gql(t.url, 'query($v: ID!) { vocabulary(id: $v) { tags(first: 10) { edges { node { id name } } } } }', { v: vocabId }, tenant.clientKey)).data!.vocabulary.tags.edges.map((e: any) => e.node);
      const cat = tags.find((x: any) => x.name === 'cat').id;
      const dog = tags.find((x: any) => x.name === 'dog').id;
      // a threshold that flips `passed` for some images: between the lowest and highest probability stored
      const probs = (await t.app.db.prisma.imageTagScore.findMany({ where: { vocabularyId: vocabId, tagId: cat } })).map((r) => r.score).sort();
      const threshold = (probs[0]! + probs[probs.length - 1]!) / 2;
      await gql(t.url, 'mutation($id: ID!, $th: Float) { updateTag(id: $id, input: { threshold: $th }) { id } }', { id: cat, th: threshold }, tenant.adminKey);
      await caughtUp();
      await compare(tolerance);
      const passed = await t.app.db.prisma.imageTagScore.count({ where: { vocabularyId: vocabId, tagId: cat, passed: true } });
      expect(passed).toBeGreaterThan(0);
      expect(passed).toBeLessThan(imageIds.length);
      await gql(t.url, 'mutation($id: ID!) { setTagDescriptions(tagId: $id, descriptions: ["a small dog on a sofa", "a puppy"]) { id } }', { id: dog }, tenant.adminKey);
      await caughtUp();
      await compare(tolerance);
    });

    it('drops removed tags\' results and coalesces quick edits into one job', async () => {
      const tags = (await gql(t.url, 'query($v: ID!) { vocabulary(id: $v) { tags(first: 10) { edges { node { id name } } } } }', { v: vocabId }, tenant.clientKey)).data!.vocabulary.tags.edges.map((e: any) => e.node);
      const parrot = tags.find((x: any) => x.name === 'parrot').id;
      const jobsBefore = await t.app.db.prisma.libraryJob.count({ where: { vocabularyId: vocabId, kind: 'RETAG' } });
      // several edits back to back: they raise the target of one job instead of queuing one each
      await gql(t.url, 'mutation($ids: [ID!]!) { removeTags(ids: $ids) { ok } }', { ids: [parrot] }, tenant.adminKey);
      for (const name of ['heron', 'fox', 'otter']) {
        await gql(t.url, 'mutation($v: ID!, $n: String!) { addTags(vocabularyId: $v, tags: [{ name: $n }]) { results { ok } } }', { v: vocabId, n: name }, tenant.adminKey);
      }
      const v = await caughtUp();
      expect(await t.app.db.prisma.imageTagScore.count({ where: { vocabularyId: vocabId, tagId: parrot } })).toBe(0);
      await compare(tolerance);
      const jobsAfter = await t.app.db.prisma.libraryJob.count({ where: { vocabularyId: vocabId, kind: 'RETAG' } });
      expect(jobsAfter - jobsBefore).toBeLessThan(4);
      expect(v.retagging.targetRevision).toBe(v.revision);
    });
  });
}

retagSuite('float32');
retagSuite('float16');
