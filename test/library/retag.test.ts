import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';
import { eventually } from '../support/eventually.ts';

const IMPORT = 'mutation($v: ID!, $images: [ImageInput!]!) { importImages(vocabularyId: $v, images: $images) { id } }';
const JOB = 'query($id: ID!) { importJob(id: $id) { state items(first: 50) { edges { node { imageId } } } } }';
const RETAG = 'query($v: ID!) { vocabulary(id: $v) { revision retagging { state targetRevision imagesBehind imagesTotal } } }';

const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000) => eventually(probe, what, timeoutMs, 50);

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
    /** Largest |stored logit − fresh tagImage logit|, and |re-tagged logit − stored encoding decoded|, over the suite. */
    let drift = 0;
    let exactDrift = 0;
    let importRevision: number;

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
      importRevision = (await gql(t.url, RETAG, { v: vocabId }, tenant.clientKey)).data!.vocabulary.revision;
    }, 120_000);

    afterAll(async () => {
      console.info(`stored ${encoding} encodings: max |Δ logit| re-tagged vs stored encoding decoded ${exactDrift.toExponential(2)}, any stored vs fresh tagImage ${drift.toExponential(2)}`);
      await t?.stop();
    });

    /** Waits for the re-tagging to reach the vocabulary's revision; returns what the vocabulary showed. */
    const caughtUp = () =>
      until('re-tagging to catch up', async () => {
        const v = (await gql(t.url, RETAG, { v: vocabId }, tenant.clientKey)).data!.vocabulary;
        return v.retagging?.state === 'SUCCEEDED' && v.retagging.targetRevision === v.revision && v.retagging.imagesBehind === 0 ? v : undefined;
      });

    /**
     * Stored rows against the current revision: (1) every re-tagged row (revision after the
     * import's) against decoding the stored encodings with the whole vocabulary in one engine
     * call, as the re-tagging step batches them (image id order): the decoder-only path itself;
     * (2) every row against a fresh scoring of the photo's bytes, one image at a time as tagImage
     * does.
     * Both bounds are the engine's own float32 rounding, not re-tagging's: the same image decoded
     * in a batch of 4 rather than alone, or against a bank of some tags rather than all, moves a
     * logit by up to ~4e-6 on this pack (GEMM blocking follows the run's shape), so `tagImage`
     * itself is not reproducible to 1e-6 across batch sizes. Decoded alone, a bank of some tags
     * gives exactly the whole bank's logits.
     */
    async function compare(tolerance: { exact: number; fresh: number }) {
      const { services, db } = t.app;
      const snap = await services.vocab.labelBanks.forVocabulary(tenant.id, vocabId);
      const ordered = [...imageIds].sort();
      const storedEmbeddings = await Promise.all(ordered.map((id) => services.library.embeddings(tenant.id, id)));
      const decoded = new Map((await services.engine.scoreImages(storedEmbeddings, [snap.bank!])).map((s, k) => [ordered[k]!, s.scores[0]!]));
      const fresh = [];
      for (const p of photos) fresh.push(...(await services.engine.scoreImages([p], [snap.bank!])));
      for (const [k, imageId] of imageIds.entries()) {
        const result = await db.prisma.imageResult.findUnique({ where: { imageId_vocabularyId: { imageId, vocabularyId: vocabId } } });
        expect(result!.revision).toBe(snap.revision);
        const rows = await db.prisma.imageTagScore.findMany({ where: { imageId, vocabularyId: vocabId } });
        const stored = new Map(rows.map((r) => [r.tagId, r]));
        const scores = fresh[k]!.scores[0]!;
        const again = decoded.get(imageId)!;
        expect(rows.length).toBe(snap.tags.length); // floor 0: every tag of the revision, no others
        for (let i = 0; i < snap.tags.length; i++) {
          const row = stored.get(snap.tags.at(i)!.id);
          expect(row, `stored score of ${snap.tags.at(i)!.name}`).toBeDefined();
          if (row!.revision > importRevision) {
            const e = Math.abs(row!.logit - again.logits[i]!);
            exactDrift = Math.max(exactDrift, e);
            expect(e).toBeLessThanOrEqual(tolerance.exact);
          }
          const d = Math.abs(row!.logit - scores.logits[i]!);
          drift = Math.max(drift, d);
          expect(d).toBeLessThanOrEqual(tolerance.fresh);
          expect(row!.passed).toBe(again.passed[i] === 1);
        }
      }
    }

    // float32 encodings are exactly the encoder's output; float16 rounds each stored value
    // (relative error ≤ 2^-11). The bounds are the measured figures (printed) with a margin.
    const tolerance = encoding === 'float32' ? { exact: 5e-6, fresh: 5e-6 } : { exact: 5e-6, fresh: 5e-3 };

    it('scores tags added later on stored images, from their encodings', async () => {
      const before = await t.app.db.prisma.imageTagScore.findMany({ where: { vocabularyId: vocabId }, orderBy: [{ imageId: 'asc' }, { tagId: 'asc' }] });
      const added = await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "owl" }, { name: "red panda" }]) { vocabulary { revision } } }', { v: vocabId }, tenant.adminKey);
      const revision = added.data!.addTags.vocabulary.revision;
      const v = await caughtUp();
      expect(v.retagging).toMatchObject({ targetRevision: revision, imagesTotal: 4 });
      await compare(tolerance);
      // unchanged tags were not scored again: their rows are those of before, revision included
      const after = new Map((await t.app.db.prisma.imageTagScore.findMany({ where: { vocabularyId: vocabId } })).map((r) => [`${r.imageId}/${r.tagId}`, r]));
      expect(before.length).toBeGreaterThan(0);
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

    it('drops removed tags\' results, and catches up with several quick edits', async () => {
      const tags = (await gql(t.url, 'query($v: ID!) { vocabulary(id: $v) { tags(first: 10) { edges { node { id name } } } } }', { v: vocabId }, tenant.clientKey)).data!.vocabulary.tags.edges.map((e: any) => e.node);
      const parrot = tags.find((x: any) => x.name === 'parrot').id;
      // several edits back to back (their coalescing is in import-jobs.test.ts, without a worker)
      await gql(t.url, 'mutation($ids: [ID!]!) { removeTags(ids: $ids) { ok } }', { ids: [parrot] }, tenant.adminKey);
      for (const name of ['heron', 'fox', 'otter']) {
        await gql(t.url, 'mutation($v: ID!, $n: String!) { addTags(vocabularyId: $v, tags: [{ name: $n }]) { results { ok } } }', { v: vocabId, n: name }, tenant.adminKey);
      }
      const v = await caughtUp();
      expect(await t.app.db.prisma.imageTagScore.count({ where: { vocabularyId: vocabId, tagId: parrot } })).toBe(0);
      await compare(tolerance);
      expect(v.retagging.targetRevision).toBe(v.revision);
      // no job is left unfinished
      expect(await t.app.db.prisma.libraryJob.count({ where: { vocabularyId: vocabId, state: { in: ['QUEUED', 'RUNNING'] } } })).toBe(0);
    });
  });
}

retagSuite('float32');
retagSuite('float16');
