/**
 * Feedback on stored images and calibration from it, through the API, with two tenants:
 * `submitFeedback`, a vocabulary's feedback counts and last calibration, `calibrateThresholds`
 * (dry run, then applied in one revision) finding the threshold that separates the answers.
 * Images are stored through the API (`tagImage` with `store: true`) with float32 encodings, so
 * that the scores calibration reads back equal tagging's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64Of, noisePng } from '../library/helpers.ts';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const SUBMIT = 'mutation($i: ID!, $t: ID!, $p: Boolean!) { submitFeedback(imageId: $i, tagId: $t, present: $p) { imageId tagId vocabularyId present } }';
const CALIBRATE = `mutation($v: ID!, $target: CalibrationTargetInput!, $dry: Boolean, $min: Int) {
  calibrateThresholds(vocabularyId: $v, target: $target, dryRun: $dry, minPositives: $min) {
    dryRun target precision minPositives feedback skippedImages
    changes { tagId name oldThreshold newThreshold positives negatives precisionBefore recallBefore expectedPrecision expectedRecall }
    kept { tagId name threshold positives reason }
    vocabulary { revision }
  }
}`;
const VOCAB = `query($v: ID!) { vocabulary(id: $v) { revision feedback { present absent tags } lastCalibration { target precision minPositives feedback changed revision }
  tags(first: 10) { edges { node { id name threshold thresholdOverride } } } } }`;

describe(`feedback and calibration through the API (${databaseMode} database)`, () => {
  let t: TestApp;
  let a: TestTenant;
  let b: TestTenant;
  let vocab: string;
  let bVocab: string;
  const tag: Record<string, string> = {};
  let bTag: string;
  const images: string[] = [];
  let bImage: string;
  /** Each of A's images' probability of "red", as tagging scored it. */
  const red: number[] = [];

  const asA = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, a.adminKey);
  const asB = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, b.adminKey);

  /** Tags and stores an image through the API; its "red" probability as tagging scored it. */
  async function store(asTenant: typeof asA, vocabularyId: string, seed: number) {
    const r = await asTenant(
      'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }, options: { store: true, includeAll: true }) { stored { image { id } created } scores { name score } } }',
      { v: vocabularyId, i: base64Of(await noisePng(seed)) },
    );
    const result = r.data!.tagImage;
    expect(result.stored.created).toBe(true);
    return { id: result.stored.image.id as string, red: (result.scores as Array<{ name: string; score: number }>).find((x) => x.name === 'red')?.score };
  }

  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_LIBRARY_ENCODING: 'float32' });
    a = await createTenantWithKeys(t.url, 'Feedback A');
    b = await createTenantWithKeys(t.url, 'Feedback B');
    vocab = (await asA('mutation { createVocabulary(input: { name: "Colours" }) { id } }')).data!.createVocabulary.id;
    const added = await asA('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "red", descriptions: ["a red photo."] }, { name: "green" }]) { results { tag { id name } } } }', { v: vocab });
    for (const r of added.data!.addTags.results) tag[r.tag.name] = r.tag.id;
    bVocab = (await asB('mutation { createVocabulary(input: { name: "Mine" }) { id } }')).data!.createVocabulary.id;
    bTag = (await asB('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "blue" }]) { results { tag { id } } } }', { v: bVocab })).data!.addTags.results[0].tag.id;

    for (let seed = 1; seed <= 8; seed++) {
      const stored = await store(asA, vocab, seed);
      images.push(stored.id);
      red.push(stored.red!);
    }
    bImage = (await store(asB, bVocab, 100)).id;
  });
  afterAll(() => t?.stop());

  it('records answers per image and tag, the latest replacing the earlier', async () => {
    const first = await gql(t.url, SUBMIT, { i: images[0], t: tag.red, p: false }, a.clientKey);
    expect(first.data!.submitFeedback).toEqual({ imageId: images[0], tagId: tag.red, vocabularyId: vocab, present: false });
    await asA(SUBMIT, { i: images[0], t: tag.red, p: true });
    const v = await asA(VOCAB, { v: vocab });
    expect(v.data!.vocabulary.feedback).toEqual({ present: 1, absent: 0, tags: 1 });
    expect(v.data!.vocabulary.lastCalibration).toBeNull();
    expect(errorCodes(await asA(SUBMIT, { i: 'nope', t: tag.red, p: true }))).toEqual(['NOT_FOUND']);
    expect(errorCodes(await asA(SUBMIT, { i: images[0], t: '00000000-0000-4000-8000-000000000000', p: true }))).toEqual(['NOT_FOUND']);
  });

  it('keeps tenants apart: another tenant’s image, tag or vocabulary is NOT_FOUND, like a missing one', async () => {
    const missing = await asB(SUBMIT, { i: '00000000-0000-4000-8000-000000000000', t: bTag, p: true });
    const foreignImage = await asB(SUBMIT, { i: images[0], t: bTag, p: true });
    const foreignTag = await asB(SUBMIT, { i: bImage, t: tag.red, p: true });
    expect(errorCodes(foreignImage)).toEqual(['NOT_FOUND']);
    expect(foreignImage.errors![0]!.message).toBe(missing.errors![0]!.message);
    expect(errorCodes(foreignTag)).toEqual(['NOT_FOUND']);
    const calibrate = await asB(CALIBRATE, { v: vocab, target: { maxF1: true }, dry: false, min: 1 });
    expect(errorCodes(calibrate)).toEqual(['NOT_FOUND']);
    expect(JSON.stringify([foreignImage, foreignTag, calibrate])).not.toMatch(/Colours|"red"/);
    // B's own answer counts for B's vocabulary only
    await asB(SUBMIT, { i: bImage, t: bTag, p: true });
    expect((await asB('query($v: ID!) { vocabulary(id: $v) { feedback { present absent tags } } }', { v: bVocab })).data!.vocabulary.feedback).toEqual({ present: 1, absent: 0, tags: 1 });
    expect((await asA(VOCAB, { v: vocab })).data!.vocabulary.feedback).toEqual({ present: 1, absent: 0, tags: 1 });
    // a CLIENT key may answer but not calibrate
    expect(errorCodes(await gql(t.url, CALIBRATE, { v: bVocab, target: { maxF1: true } }, b.clientKey))).toEqual(['FORBIDDEN']);
  });

  it('proposes the threshold that separates the answers, then applies it in one revision', async () => {
    // "red" is present on the four images it scores highest, absent on the others; "green" has two answers only
    const order = [...red.keys()].sort((x, y) => red[y]! - red[x]!);
    for (const [rank, i] of order.entries()) await asA(SUBMIT, { i: images[i], t: tag.red, p: rank < 4 });
    await asA(SUBMIT, { i: images[1], t: tag.green, p: true });
    await asA(SUBMIT, { i: images[2], t: tag.green, p: true });
    const before = (await asA(VOCAB, { v: vocab })).data!.vocabulary;
    expect(before.feedback).toEqual({ present: 6, absent: 4, tags: 2 });

    const dry = (await asA(CALIBRATE, { v: vocab, target: { maxF1: true }, min: 3 })).data!.calibrateThresholds;
    expect(dry).toMatchObject({ dryRun: true, target: 'maxF1', precision: null, minPositives: 3, feedback: 10, skippedImages: 0, vocabulary: { revision: before.revision } });
    expect(dry.changes).toHaveLength(1);
    const change = dry.changes[0];
    // half-way between the lowest "present" score and the highest "absent" one: F1 1 on these answers
    const lowestPresent = red[order[3]!]!;
    const highestAbsent = red[order[4]!]!;
    expect(change).toMatchObject({ tagId: tag.red, name: 'red', oldThreshold: 0.5, positives: 4, negatives: 4, expectedPrecision: 1, expectedRecall: 1 });
    expect(change.newThreshold).toBeCloseTo((lowestPresent + highestAbsent) / 2, 5);
    expect(change.newThreshold).toBeLessThan(lowestPresent);
    expect(change.newThreshold).toBeGreaterThan(highestAbsent);
    expect(dry.kept).toEqual([{ tagId: tag.green, name: 'green', threshold: 0.5, positives: 2, reason: 'few-positives' }]);
    expect((await asA(VOCAB, { v: vocab })).data!.vocabulary.lastCalibration).toBeNull();

    const applied = (await asA(CALIBRATE, { v: vocab, target: { maxF1: true }, dry: false, min: 3 })).data!.calibrateThresholds;
    expect(applied.dryRun).toBe(false);
    expect(applied.changes).toEqual(dry.changes);
    expect(applied.vocabulary.revision).toBe(before.revision + 1);
    const after = (await asA(VOCAB, { v: vocab })).data!.vocabulary;
    const redTag = after.tags.edges.find((e: any) => e.node.name === 'red').node;
    expect(redTag.thresholdOverride).toBe(change.newThreshold);
    expect(after.lastCalibration).toEqual({ target: 'maxF1', precision: null, minPositives: 3, feedback: 10, changed: 1, revision: before.revision + 1 });

    // a target precision out of reach for none: precision 1 is met at the same cut, so nothing changes now
    const again = (await asA(CALIBRATE, { v: vocab, target: { precision: 1 }, dry: false, min: 3 })).data!.calibrateThresholds;
    expect(again.changes).toEqual([]);
    expect(again.kept.find((k: any) => k.name === 'red')).toMatchObject({ reason: 'unchanged' });
    expect(again.vocabulary.revision).toBe(before.revision + 1);
    expect(errorCodes(await asA(CALIBRATE, { v: vocab, target: { maxF1: true, precision: 0.9 } }))).toEqual(['BAD_USER_INPUT']);
    expect(errorCodes(await asA(CALIBRATE, { v: vocab, target: { precision: 1.5 } }))).toEqual(['BAD_USER_INPUT']);
  });

  it('forgets the answers of a deleted tag or image', async () => {
    await asA('mutation($ids: [ID!]!) { removeTags(ids: $ids) { ok } }', { ids: [tag.green] });
    expect((await asA(VOCAB, { v: vocab })).data!.vocabulary.feedback).toEqual({ present: 4, absent: 4, tags: 1 });
    // the image "red" scores lowest on was answered absent
    const lowest = [...red.keys()].sort((x, y) => red[x]! - red[y]!)[0]!;
    const gone = await asA('mutation($ids: [ID!]!) { deleteImages(ids: $ids) { deleted } }', { ids: [images[lowest]] });
    expect(gone.data!.deleteImages).toEqual([{ deleted: true }]);
    expect((await asA(VOCAB, { v: vocab })).data!.vocabulary.feedback).toEqual({ present: 4, absent: 3, tags: 1 });
  });
});
