/**
 * The console's images view and calibration panel in a browser: headless chromium against the
 * real server (embedded database, tiny model pack). Two images are stored through the API, an
 * admin answers yes / no on their tags in the images view, and a dry-run calibration from those
 * answers is shown on the vocabulary's screen. The steps run in order, as one session would.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { base64Of, noisePng } from '../library/helpers.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { browserSkipReason, expectAccessible, launchBrowser, screenshot, watchPage } from '../support/browser.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const skip = browserSkipReason();
if (skip) console.warn(`console tests skipped: ${skip}`);

const FEEDBACK = 'query($v: ID!) { vocabulary(id: $v) { feedback { present absent tags } } }';

describe.skipIf(skip)('the console’s images view and calibration', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let tenant: TestTenant;
  let vocab: string;

  const asAdmin = (q: string, v?: Record<string, unknown>) => gql(t.url, q, v, tenant.adminKey);

  beforeAll(async () => {
    // A floor of 0 keeps every tag's score, so both tags show on both images whatever the random pack
    // scores; float32 encodings make calibration's scores equal the stored ones the last step compares.
    [t, browser] = await Promise.all([startTestApp({ OMNITAG_LIBRARY_SCORE_FLOOR: '0', OMNITAG_LIBRARY_ENCODING: 'float32' }), launchBrowser()]);
    tenant = await createTenantWithKeys(t.url, 'Library console');
    vocab = (await asAdmin('mutation { createVocabulary(input: { name: "Colours" }) { id } }')).data!.createVocabulary.id;
    const added = await asAdmin('mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "red", descriptions: ["a red photo."] }, { name: "green" }]) { results { ok } } }', { v: vocab });
    expect(added.data!.addTags.results).toEqual([{ ok: true }, { ok: true }]);
    for (const [seed, externalId] of [
      [1, 'first-photo'],
      [2, 'second-photo'],
    ] as const) {
      const r = await asAdmin('mutation($v: ID!, $i: String!, $x: String!) { tagImage(vocabularyId: $v, image: { base64: $i, externalId: $x }, options: { store: true }) { stored { created } } }', {
        v: vocab,
        i: base64Of(await noisePng(seed)),
        x: externalId,
      });
      expect(r.data!.tagImage.stored.created).toBe(true);
    }
    const context = await browser.newContext({ baseURL: t.url, viewport: { width: 1280, height: 860 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    problems = watchPage(page);
  });
  let broken = false;
  beforeEach((ctx) => {
    if (broken) ctx.skip();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') broken = true;
    expect(problems).toEqual([]);
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  const image = (name: string) => page.getByRole('article', { name: `Image ${name}` });
  const answers = (name: string, tag: string) => image(name).getByRole('group', { name: `Is “${tag}” in the image?` });

  it('lists the stored images with thumbnails and their tags, from the vocabulary’s screen', async () => {
    await page.goto('/console/');
    await page.getByLabel('API key').fill(tenant.adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Colours' }).click();
    await expect.poll(() => page.getByTestId('stat-feedback').textContent()).toBe('0 / 0');
    await expect.poll(() => page.getByTestId('last-calibration').textContent()).toContain('never');
    await page.getByRole('link', { name: 'Images and feedback' }).click();
    await expect.poll(() => page.getByTestId('image-count').textContent()).toContain('2 images');
    expect(page.url()).toContain(`#/vocabularies/${vocab}/images`);
    await expect.poll(() => page.getByTestId('stored-image').count()).toBe(2);
    for (const name of ['first-photo', 'second-photo']) {
      expect(await image(name).locator('img').getAttribute('src')).toMatch(/^data:image\//);
      expect(await image(name).getByRole('rowheader').allTextContents()).toEqual(expect.arrayContaining(['red', 'green']));
    }
    await expectAccessible(page, 'images');
    await screenshot(page, 'images');
  });

  it('ranks by one tag when asked, and says so', async () => {
    await page.getByLabel('Rank by tag').fill('red');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.getByTestId('image-count').textContent()).toContain('ranked by “red”');
    await expect.poll(() => page.getByTestId('stored-image').count()).toBe(2);
    await page.getByLabel('Rank by tag').fill('no-such-tag');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.getByRole('alert').getAttribute('data-code')).toBe('NOT_FOUND');
    expect(await page.getByTestId('stored-image').count()).toBe(0);
    await page.getByLabel('Rank by tag').fill('');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.getByRole('alert').count()).toBe(0);
  });

  it('records yes / no answers and shows each as recorded; the vocabulary’s counts follow', async () => {
    await answers('first-photo', 'red').getByRole('button', { name: 'yes' }).click();
    await expect.poll(() => answers('first-photo', 'red').getByTestId('feedback-recorded').textContent()).toBe('recorded: yes');
    await answers('second-photo', 'red').getByRole('button', { name: 'no' }).click();
    await expect.poll(() => answers('second-photo', 'red').getByTestId('feedback-recorded').textContent()).toBe('recorded: no');
    expect(await answers('second-photo', 'red').getByRole('button', { name: 'no' }).getAttribute('aria-pressed')).toBe('true');
    const counts = await asAdmin(FEEDBACK, { v: vocab });
    expect(counts.data!.vocabulary.feedback).toEqual({ present: 1, absent: 1, tags: 1 });
    // Changing one's mind replaces the answer rather than adding one.
    await answers('second-photo', 'red').getByRole('button', { name: 'yes' }).click();
    await expect.poll(() => answers('second-photo', 'red').getByTestId('feedback-recorded').textContent()).toBe('recorded: yes');
    expect((await asAdmin(FEEDBACK, { v: vocab })).data!.vocabulary.feedback).toEqual({ present: 2, absent: 0, tags: 1 });
    await answers('second-photo', 'red').getByRole('button', { name: 'no' }).click();
    await expect.poll(async () => (await asAdmin(FEEDBACK, { v: vocab })).data!.vocabulary.feedback).toEqual({ present: 1, absent: 1, tags: 1 });
  });

  it('shows the counts on the vocabulary’s screen and a dry-run calibration from the answers, changing nothing', async () => {
    await page.getByRole('link', { name: /Colours/ }).first().click();
    await expect.poll(() => page.getByTestId('stat-feedback').textContent()).toBe('1 / 1');
    const before = (await asAdmin('query($v: ID!) { vocabulary(id: $v) { revision } }', { v: vocab })).data!.vocabulary.revision;
    const panel = page.getByRole('region', { name: 'Calibrate thresholds' });
    await panel.getByLabel('Fewest “yes” answers per tag').fill('1');
    await panel.getByRole('button', { name: 'Dry run' }).click();
    const proposal = page.getByTestId('calibration-proposal');
    await expect.poll(() => proposal.getByRole('status').textContent()).toMatch(/^Proposed from 2 answers: \d+ changes?, \d+ kept\.$/);
    // "red" is either given a new threshold (shown with its expected precision / recall) or kept with a reason.
    const shown = `${await proposal.textContent()}`;
    expect(shown).toMatch(/red/);
    expect((await asAdmin('query($v: ID!) { vocabulary(id: $v) { revision lastCalibration { revision } } }', { v: vocab })).data!.vocabulary).toEqual({ revision: before, lastCalibration: null });
    // A precision outside (0, 1] is the API's BAD_USER_INPUT, shown in words (0 passes the field's own min).
    await panel.getByLabel('Precision at least').check();
    await panel.getByLabel('Precision', { exact: true }).fill('0');
    await panel.getByRole('button', { name: 'Dry run' }).click();
    await expect.poll(() => panel.getByRole('alert').getAttribute('data-code')).toBe('BAD_USER_INPUT');
    await expectAccessible(page, 'vocabulary-calibrate');
  });

  it('applies a proposal with "Apply": the thresholds change in one revision, shown as the last calibration', async () => {
    // Answers that a threshold between the two images' "red" scores fits exactly, against a
    // threshold above both: the best F1 is then a change whatever the random pack scores.
    const ranked = await asAdmin('query($v: ID!) { images(vocabularyId: $v, filter: { tag: "red" }) { edges { score { score tag { id } } node { id } } } }', { v: vocab });
    const [high, low] = ranked.data!.images.edges as { score: { score: number; tag: { id: string } }; node: { id: string } }[];
    expect(high!.score.score).toBeGreaterThan(low!.score.score);
    expect(high!.score.score).toBeLessThan(0.99);
    const red = high!.score.tag.id;
    for (const [image, present] of [
      [high!.node.id, true],
      [low!.node.id, false],
    ] as const) {
      const r = await asAdmin('mutation($i: ID!, $t: ID!, $p: Boolean!) { submitFeedback(imageId: $i, tagId: $t, present: $p) { present } }', { i: image, t: red, p: present });
      expect(r.errors).toBeUndefined();
    }
    expect((await asAdmin('mutation($t: ID!) { updateTag(id: $t, input: { threshold: 0.99 }) { thresholdOverride } }', { t: red })).errors).toBeUndefined();
    await page.reload();
    const panel = page.getByRole('region', { name: 'Calibrate thresholds' });
    await panel.getByLabel('Best F1').check();
    await panel.getByLabel('Fewest “yes” answers per tag').fill('1');
    await panel.getByRole('button', { name: 'Dry run' }).click();
    const proposal = page.getByTestId('calibration-proposal');
    await expect.poll(() => proposal.getByRole('status').textContent()).toMatch(/^Proposed from 2 answers: 1 change, \d+ kept\.$/);
    expect(await proposal.getByRole('table', { name: 'Threshold changes' }).getByRole('rowheader').allTextContents()).toEqual(['red']);
    await panel.scrollIntoViewIfNeeded();
    await screenshot(page, 'calibrate');
    const before = (await asAdmin('query($v: ID!) { vocabulary(id: $v) { revision } }', { v: vocab })).data!.vocabulary.revision;
    await proposal.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.getByTestId('calibration-applied').locator('.notice').textContent()).toBe(`Applied: 1 threshold changed, now revision ${before + 1}.`);
    await expect.poll(() => page.getByTestId('last-calibration').textContent()).toContain(`best F1, 1 threshold changed from 2 answers (revision ${before + 1}`);
    const after = await asAdmin('query($t: ID!) { tag(id: $t) { thresholdOverride } }', { t: red });
    const learnt = after.data!.tag.thresholdOverride as number;
    expect(learnt).toBeGreaterThan(low!.score.score);
    expect(learnt).toBeLessThanOrEqual(high!.score.score);
  });
});
