/**
 * Calibration through the API: `setTagThresholds` (several overrides, one revision, per-item
 * results) and `omnitag eval --api … --calibrate maxF1 --apply` against a real server, scoring a
 * tenant's vocabulary over HTTP.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { errorCodes, gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';
import { repoRoot } from '../inference/helpers.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-eval-api-'));
const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');

const SET = `mutation($v: ID!, $t: [TagThresholdInput!]!) {
  setTagThresholds(vocabularyId: $v, thresholds: $t) { results { id ok error { code message } } vocabulary { revision } }
}`;
const TAGS = 'query($v: ID!) { vocabulary(id: $v) { revision tags(first: 50) { edges { node { id name threshold thresholdOverride } } } } }';

describe(`calibrated thresholds through the API (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocab: string;
  const tagIds: Record<string, string> = {};
  const admin = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, tenant.adminKey);
  const tags = async () => {
    const r = await admin(TAGS, { v: vocab });
    return { revision: r.data!.vocabulary.revision as number, byName: new Map((r.data!.vocabulary.tags.edges as any[]).map((e) => [e.node.name as string, e.node])) };
  };

  beforeAll(async () => {
    t = await startTestApp();
    tenant = await createTenantWithKeys(t.url, 'Calibrating Co');
    vocab = (await admin('mutation { createVocabulary(input: { name: "Shapes" }) { id } }')).data!.createVocabulary.id;
    const added = await admin('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "red", descriptions: ["a red photo."] }, { name: "green", descriptions: ["a green photo.", "grass"] }, { name: "blue" }]) { results { tag { id name } } } }', { v: vocab });
    for (const r of added.data!.addTags.results) tagIds[r.tag.name] = r.tag.id;
    mkdirSync(path.join(tmp, 'imgs'));
    const colours = ['#c22', '#2c2', '#22c', '#cc2', '#888', '#111'];
    await Promise.all(colours.map((c, i) => sharp({ create: { width: 64, height: 48, channels: 3, background: c } }).png().toFile(path.join(tmp, 'imgs', `i${i}.png`))));
    writeFileSync(path.join(tmp, 'labels.json'), JSON.stringify({ 'imgs/i0.png': ['red'], 'imgs/i1.png': ['green'], 'imgs/i2.png': ['blue'], 'imgs/i3.png': ['red', 'green'], 'imgs/i4.png': [], 'imgs/i5.png': ['blue'] }));
  });
  afterAll(async () => {
    await t?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('sets several overrides in one revision, item by item', async () => {
    const before = (await tags()).revision;
    const r = await admin(SET, {
      v: vocab,
      t: [
        { tagId: tagIds.red, threshold: 0.25 },
        { tagId: tagIds.green, threshold: 0.75 },
        { tagId: tagIds.blue, threshold: 1.5 },
        { tagId: tagIds.red, threshold: 0.3 },
        { tagId: 'nope', threshold: 0.3 },
      ],
    });
    expect(r.data!.setTagThresholds.results.map((x: any) => [x.ok, x.error?.code ?? null])).toEqual([
      [true, null],
      [true, null],
      [false, 'BAD_USER_INPUT'],
      [false, 'BAD_USER_INPUT'],
      [false, 'NOT_FOUND'],
    ]);
    expect(r.data!.setTagThresholds.vocabulary.revision).toBe(before + 1);
    const after = await tags();
    expect([after.byName.get('red').thresholdOverride, after.byName.get('green').thresholdOverride, after.byName.get('blue').thresholdOverride]).toEqual([0.25, 0.75, null]);

    // the same values again change nothing and make no revision; null removes an override
    const same = await admin(SET, { v: vocab, t: [{ tagId: tagIds.red, threshold: 0.25 }] });
    expect(same.data!.setTagThresholds.vocabulary.revision).toBe(before + 1);
    const cleared = await admin(SET, { v: vocab, t: [{ tagId: tagIds.red, threshold: null }, { tagId: tagIds.green, threshold: null }] });
    expect(cleared.data!.setTagThresholds.vocabulary.revision).toBe(before + 2);
    expect((await tags()).byName.get('red')).toMatchObject({ thresholdOverride: null, threshold: 0.5 });

    // a CLIENT key may not
    expect(errorCodes(await gql(t.url, SET, { v: vocab, t: [{ tagId: tagIds.red, threshold: 0.2 }] }, tenant.clientKey))).toEqual(['FORBIDDEN']);
  });

  it('evaluates the vocabulary over HTTP and applies the calibration in one revision', async () => {
    const out = path.join(tmp, 'out');
    const before = await tags();
    const { stdout } = await run(
      tsx,
      ['src/cli/tag.ts', 'eval', path.join(tmp, 'labels.json'), '--api', `${t.url}/graphql`, '--vocabulary', vocab, '--out', out, '--calibrate', 'maxF1', '--min-positives', '1', '--apply', '--no-progress'],
      { cwd: repoRoot, env: { ...process.env, OMNITAG_API_KEY: tenant.adminKey } },
    );
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.scorer).toMatchObject({ vocabulary: 'Shapes', vocabularyId: vocab, revision: before.revision });
    expect(report.dataset).toMatchObject({ layout: 'json', images: 6, tags: 3 });

    // the scores are the server's: tagImages gives the same for an image
    const image = readFileSync(path.join(tmp, 'imgs', 'i3.png')).toString('base64');
    const direct = await admin('mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }, options: { includeAll: true }) { scores { name score } } }', { v: vocab, i: image });
    const serverScores = new Map((direct.data!.tagImage.scores as any[]).map((s) => [s.name, s.score]));
    const cached = readFileSync(path.join(out, 'scores.jsonl'), 'utf8').trim().split('\n').slice(1).map((l) => JSON.parse(l));
    const row = cached.find((c) => c.image === 'imgs/i3.png');
    const b = Buffer.from(row.scores, 'base64');
    const scores = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    // (batched with other images or alone: float32 sums in another order, hence the tolerance)
    ['red', 'green', 'blue'].forEach((n, c) => expect(scores[c]).toBeCloseTo(serverScores.get(n), 5));

    const calibration = JSON.parse(readFileSync(path.join(out, 'calibration.json'), 'utf8'));
    expect(calibration.changes.length).toBeGreaterThan(0);
    expect(stdout).toContain(`applied ${calibration.changes.length} threshold(s) to "Shapes" in revision ${before.revision + 1}`);
    const after = await tags();
    expect(after.revision).toBe(before.revision + 1);
    for (const c of calibration.changes) expect(after.byName.get(c.tag).thresholdOverride).toBe(c.new);
  });
});
