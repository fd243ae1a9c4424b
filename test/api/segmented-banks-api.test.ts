/**
 * Through the API: a vocabulary mixing built-in, disabled built-in, threshold-overridden, added
 * and re-described tags, compiled into small segments, scores every tag exactly as one
 * monolithic bank of the same rows scored by an engine of this test's own.
 */
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLabelBank, createLocalInferenceEngine, type LabelBankTag, type LocalInferenceEngine } from '../../src/inference/index.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { databaseMode } from '../support/database.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const own = [
  { name: 'reach truck', descriptions: ['a reach truck between racks.', 'an electric reach truck.'] },
  { name: 'pallet wrapper', descriptions: ['a machine wrapping a pallet.'] },
  { name: 'dock plate', descriptions: ['a steel dock plate.', 'a ramp between dock and truck.', 'a dock plate on the floor.'] },
  { name: 'tote bin', descriptions: ['a blue plastic tote bin.'] },
  { name: 'order picker', threshold: 0.61, descriptions: ['a worker picking orders.', 'an order picker machine.'] },
];
const REDESCRIBED = ['a hand-written description.', 'another hand-written one.'];

describe(`segmented label banks through the API (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let engine: LocalInferenceEngine;
  let vocabularyId: string;
  const disabled: string[] = [];
  let redescribed = '';
  let overridden = '';

  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_LABEL_BANK_SEGMENT_TAGS: '2' });
    tenant = await createTenantWithKeys(t.url, 'Segments');
    engine = await createLocalInferenceEngine({ packDir: path.resolve('packs/tiny') });
    const builtin = await engine.builtinVocabulary();
    const admin = (query: string, variables: Record<string, unknown>) =>
      gql(t.url, query, variables, tenant.adminKey).then((r) => {
        expect(r.errors).toBeUndefined();
        return r.data!;
      });
    vocabularyId = (await admin('mutation { createVocabulary(input: { name: "mixed", fromBuiltin: true }) { id } }', {})).createVocabulary.id;
    const idOf = async (name: string) => {
      const page = await admin('query($v: ID!, $s: String!) { vocabulary(id: $v) { tags(first: 50, search: $s) { edges { node { id name } } } } }', { v: vocabularyId, s: name });
      return page.vocabulary.tags.edges.find((e: { node: { name: string } }) => e.node.name === name).node.id as string;
    };
    for (const i of [1, 2]) {
      disabled.push(builtin.tags[i]!.name);
      await admin('mutation($id: ID!) { updateTag(id: $id, input: { enabled: false }) { id } }', { id: await idOf(builtin.tags[i]!.name) });
    }
    overridden = builtin.tags[4]!.name;
    await admin('mutation($id: ID!) { updateTag(id: $id, input: { threshold: 0.2 }) { id } }', { id: await idOf(overridden) });
    redescribed = builtin.tags[6]!.name;
    await admin('mutation($id: ID!, $d: [String!]!) { setTagDescriptions(tagId: $id, descriptions: $d) { id } }', { id: await idOf(redescribed), d: REDESCRIBED });
    const added = await admin('mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }', { v: vocabularyId, t: own });
    expect(added.addTags.results.every((r: { ok: boolean }) => r.ok)).toBe(true);
  }, 120_000);
  afterAll(async () => {
    await engine?.dispose();
    await t?.stop();
  });

  it('returns every score as a monolithic bank gives it', async () => {
    const jpeg = await sharp({ create: { width: 200, height: 150, channels: 3, background: { r: 30, g: 140, b: 200 } } })
      .composite([{ input: Buffer.from('<svg width="80" height="60"><rect width="80" height="60" fill="#e0a020"/></svg>'), left: 40, top: 30 }])
      .jpeg()
      .toBuffer();
    const r = await gql(
      t.url,
      'mutation($v: ID!, $i: ImageInput!) { tagImage(vocabularyId: $v, image: $i, options: { includeAll: true }) { revision scores { name score threshold passed } } }',
      { v: vocabularyId, i: { base64: jpeg.toString('base64') } },
      tenant.clientKey,
    );
    expect(r.errors).toBeUndefined();
    const got = new Map<string, { score: number; threshold: number; passed: boolean }>(r.data!.tagImage.scores.map((s: { name: string }) => [s.name, s]));

    // the expected bank: pack rows for built-in tags, this engine's embeddings of the stored texts for the others
    const builtin = await engine.builtinVocabulary();
    const E = engine.info.embedDim;
    const D = builtin.segment.maxDescriptions;
    const rows = builtin.segment.embeds as Float32Array;
    const names: string[] = [];
    const tags: LabelBankTag[] = [];
    for (const [i, b] of builtin.tags.entries()) {
      if (disabled.includes(b.name)) continue;
      names.push(b.name);
      if (b.name === redescribed) {
        tags.push({ descriptions: (await engine.embedTexts(REDESCRIBED)).embeddings, threshold: b.threshold });
        continue;
      }
      tags.push({ descriptions: rows.subarray(i * D * E, (i * D + b.descriptionCount) * E), threshold: b.name === overridden ? 0.2 : b.threshold });
    }
    for (const o of own) {
      names.push(o.name);
      tags.push({ descriptions: (await engine.embedTexts(o.descriptions)).embeddings, threshold: o.threshold ?? 0.5 });
    }
    const mono = buildLabelBank({ key: 'expected', embedDim: E, tags });
    const [scored] = await engine.scoreImages([new Uint8Array(jpeg)], [mono]);
    const expected = scored!.scores[0]!;

    expect(got.size).toBe(names.length);
    for (const name of disabled) expect(got.has(name)).toBe(false);
    let worst = 0;
    names.forEach((name, c) => {
      const g = got.get(name)!;
      worst = Math.max(worst, Math.abs(g.score - expected.probabilities[c]!));
      expect(g.passed).toBe(expected.passed[c] === 1);
      expect(g.threshold).toBeCloseTo(expected.thresholds[c]!, 6);
    });
    expect(worst).toBeLessThanOrEqual(1e-6);
    expect(got.get(overridden)!.threshold).toBeCloseTo(0.2, 6);
  });
});
