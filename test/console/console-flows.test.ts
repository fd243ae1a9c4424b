/**
 * The console as its users drive it: headless chromium against the real server (embedded
 * database, tiny model pack) with a local OpenAI-compatible stand-in writing descriptions. The
 * steps run in order, as one admin's session would: each starts where the last one left off.
 */
import sharp from 'sharp';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gql, PLATFORM_KEY, startTestApp, type TestApp } from '../support/app.ts';
import { browserSkipReason, expectAccessible, launchBrowser, screenshot, watchPage } from '../support/browser.ts';
import { FakeLlmServer } from '../support/fake-llm-server.ts';
import { createTenantWithKeys } from '../support/tenants.ts';

const skip = browserSkipReason();
if (skip) console.warn(`console tests skipped: ${skip}`);

/** The stand-in LLM refuses to describe this tag (a failure for good) until told otherwise. */
const UNLUCKY = 'unicorn';

describe.skipIf(skip)('the console in a browser', () => {
  let llm: FakeLlmServer;
  let t: TestApp;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let adminKey: string;
  let photo: Buffer;

  beforeAll(async () => {
    llm = await FakeLlmServer.start({ behave: (req) => (req.tag === UNLUCKY ? { kind: 'refuse' } : undefined) });
    [t, browser, photo] = await Promise.all([
      startTestApp({ OMNITAG_LLM_BASE_URL: llm.url, OMNITAG_LLM_API_KEY: 'test-key', OMNITAG_LLM_MODEL: 'fake-model', OMNITAG_LLM_MAX_RETRIES: '0', OMNITAG_LLM_TIMEOUT_MS: '2000' }),
      launchBrowser(),
      sharp({ create: { width: 640, height: 480, channels: 3, background: '#3a7' } }).composite([{ input: Buffer.from('<svg width="300" height="200"><circle cx="150" cy="100" r="90" fill="#c33"/></svg>'), left: 100, top: 100 }]).jpeg().toBuffer(),
    ]);
    context = await browser.newContext({ baseURL: t.url, viewport: { width: 1280, height: 860 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    problems = watchPage(page);
  });
  // Each step starts where the last one ended: after a failure the rest would only time out.
  let broken = false;
  beforeEach((ctx) => {
    if (broken) ctx.skip();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') broken = true;
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
    await llm?.close();
  });

  const signIn = async (key: string, remember = false) => {
    await page.getByLabel('API key').fill(key);
    if (remember) await page.getByLabel('Remember on this device').check();
    await page.getByRole('button', { name: 'Sign in' }).click();
  };
  const storedKeys = () => page.evaluate(`[sessionStorage.getItem('omnitag.console.key'), localStorage.getItem('omnitag.console.key')]`) as Promise<(string | null)[]>;
  const dialog = () => page.getByRole('dialog');
  /** Drops files on `target`, or pastes them there, as a user's drag and drop or clipboard would. */
  const handOver = (target: Locator, how: 'drop' | 'paste', files: { name: string; mimeType: string; buffer: Buffer }[]) =>
    target.evaluate(
      (el, { how, files }) => {
        const w = globalThis as any;
        const data = new w.DataTransfer();
        for (const f of files) data.items.add(new w.File([Uint8Array.from(w.atob(f.base64), (c: string) => c.charCodeAt(0))], f.name, { type: f.mimeType }));
        const init = { bubbles: true, cancelable: true };
        el.dispatchEvent(how === 'drop' ? new w.DragEvent('drop', { ...init, dataTransfer: data }) : new w.ClipboardEvent('paste', { ...init, clipboardData: data }));
      },
      { how, files: files.map((f) => ({ name: f.name, mimeType: f.mimeType, base64: f.buffer.toString('base64') })) },
    );
  const go = (screen: string) => page.getByRole('navigation').getByRole('link', { name: screen, exact: true }).click();

  it('is served at /console with a strict Content-Security-Policy, and refuses a wrong key in words', async () => {
    const res = await page.goto('/console/');
    expect(res!.status()).toBe(200);
    const csp = res!.headers()['content-security-policy']!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:/);
    await expectAccessible(page, 'sign-in');
    await screenshot(page, 'sign-in');

    // keyboard only: the key field has the focus, Enter submits
    await page.keyboard.type('ot_not-a-real-key-000000000000');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('This key is not valid');
    expect(await storedKeys()).toEqual([null, null]);
  });

  it('signs the platform admin in to the tenants screen: pages, creates a tenant, issues its first ADMIN key', async () => {
    // More tenants than one page holds.
    for (let i = 0; i < 21; i++) await gql(t.url, 'mutation($n: String!) { createTenant(input: { name: $n }) { id } }', { n: `Filler ${i}` }, PLATFORM_KEY);
    await signIn(PLATFORM_KEY);
    await page.getByRole('heading', { name: 'Tenants' }).waitFor();
    expect(page.url()).not.toContain(PLATFORM_KEY);
    await page.getByText('21 tenants · page 1 of 2').waitFor();
    await page.getByRole('button', { name: 'Next page' }).click();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    await page.getByText('page 2 of 2').waitFor();
    await page.getByRole('button', { name: 'Previous page' }).click();

    await page.getByRole('button', { name: 'New tenant' }).click();
    await expect.poll(() => page.evaluate('document.activeElement.closest("dialog") !== null')).toBe(true);
    await dialog().getByLabel('Name', { exact: true }).fill('Console Co');
    await dialog().getByRole('button', { name: 'Create tenant' }).click();
    await page.getByText('22 tenants').waitFor();
    await expectAccessible(page, 'tenants');
    await screenshot(page, 'tenants');

    await page.getByRole('button', { name: 'Issue first ADMIN key for Console Co' }).click();
    await dialog().getByText('It is shown only once').waitFor();
    adminKey = await dialog().getByLabel('New ADMIN key').inputValue();
    expect(adminKey.length).toBeGreaterThan(20);
    await expectAccessible(page, 'first key');
    await screenshot(page, 'first-key');
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog().count()).toBe(0);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    expect(await storedKeys()).toEqual([null, null]);
  });

  it('signs an ADMIN in (remembered), creates a vocabulary from the built-in tags, renames it', async () => {
    await signIn(adminKey, true);
    await page.getByRole('heading', { name: 'Vocabularies' }).waitFor();
    expect(await storedKeys()).toEqual([null, adminKey]);
    expect(await page.getByTestId('tenant').textContent()).toBe('Console Co');
    expect(await page.getByTestId('role').textContent()).toBe('ADMIN');
    expect(adminKey.startsWith((await page.getByTestId('key-prefix').textContent())!)).toBe(true);
    await page.getByText('No vocabularies yet').waitFor();

    await page.getByRole('button', { name: 'New vocabulary' }).click();
    await dialog().getByLabel('Name').fill('Everything');
    await dialog().getByLabel(/built-in tags \(4,585\)/).check();
    await dialog().getByRole('button', { name: 'Create vocabulary' }).click();
    const row = page.locator('tbody tr', { hasText: 'Everything' });
    await row.waitFor();
    expect(await row.locator('td').nth(1).textContent()).toBe('4585');

    await row.getByRole('button', { name: 'Rename Everything' }).click();
    await dialog().getByLabel('Name').fill('All tags');
    await dialog().getByRole('button', { name: 'Rename' }).click();
    await page.getByRole('link', { name: 'All tags' }).waitFor();
    await expectAccessible(page, 'vocabularies');
    await screenshot(page, 'vocabularies');

    // Deleting asks first, naming what goes with it.
    await gql(t.url, 'mutation { createVocabulary(input: { name: "Scratch" }) { id } }', {}, adminKey).then((r) =>
      gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "a" }, { name: "b" }]) { results { ok } } }', { v: r.data!.createVocabulary.id }, adminKey),
    );
    await page.reload();
    await page.getByRole('button', { name: 'Delete Scratch' }).click();
    expect(await dialog().textContent()).toContain('Its 2 tags and all their descriptions will be deleted for good');
    await expectAccessible(page, 'delete confirmation');
    await dialog().getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => page.getByRole('link', { name: 'Scratch' }).count()).toBe(1);
    await page.getByRole('button', { name: 'Delete Scratch' }).click();
    await dialog().getByRole('button', { name: 'Delete vocabulary' }).click();
    await expect.poll(() => page.getByRole('link', { name: 'Scratch' }).count()).toBe(0);
  });

  it('pages and searches the 4,585 tags by name and alias, and edits a tag inline', async () => {
    await page.getByRole('link', { name: 'All tags' }).click();
    await page.getByText('4,585 tags · page 1 of 92').waitFor();
    expect(await page.getByTestId('stat-tags').textContent()).toBe('4,585');
    expect(await page.locator('table.tags tbody tr').count()).toBe(50);
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.getByText('4,585 tags · page 2 of 92').waitFor();
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.getByText('4,585 tags · page 1 of 92').waitFor();

    await page.getByLabel('Search names and aliases').fill('abacus');
    await page.getByText('1 tags match “abacus”').waitFor();
    const abacus = page.locator('tr[data-tag="abacus"]');
    await abacus.getByLabel('Threshold of abacus').fill('0.8');
    await abacus.getByLabel('Threshold of abacus').press('Enter');
    await abacus.getByText('Saved').waitFor();
    await abacus.getByLabel('Enabled of abacus').uncheck();
    await abacus.getByLabel('Aliases (comma-separated) of abacus').fill('counting frame, soroban');
    await abacus.getByLabel('Aliases (comma-separated) of abacus').press('Enter');
    const names = abacus.getByLabel(/Names in other languages/);
    expect(await names.inputValue()).toBe('zh: 算盘');
    await names.fill('zh: 算盘; fr: boulier');
    await names.press('Enter');
    await abacus.getByText('Saved').waitFor();

    const vocabId = decodeURIComponent(page.url().split('/').pop()!);
    const read = await gql(t.url, 'query($id: ID!) { vocabulary(id: $id) { tags(search: "abacus") { edges { node { threshold enabled aliases names { language name } } } } } }', { id: vocabId }, adminKey);
    expect(read.data!.vocabulary.tags.edges[0].node).toEqual({
      threshold: 0.8,
      enabled: false,
      aliases: ['counting frame', 'soroban'],
      names: [{ language: 'fr', name: 'boulier' }, { language: 'zh', name: '算盘' }],
    });

    // the alias finds the tag too
    await page.getByLabel('Search names and aliases').fill('soroban');
    await page.getByText('1 tags match “soroban”').waitFor();
    await page.locator('tr[data-tag="abacus"]').waitFor();
    await page.getByLabel('Search names and aliases').fill('');
    await page.getByText('4,585 tags · page 1 of 92').waitFor();
    await expectAccessible(page, 'tags');
    await screenshot(page, 'tags');
  });

  it('bulk-adds tags with per-line results (one bad line), from pasted lines and a CSV file, and removes a selection', async () => {
    await go('Vocabularies');
    await page.getByRole('button', { name: 'New vocabulary' }).click();
    await dialog().getByLabel('Name').fill('Pets');
    await dialog().getByRole('button', { name: 'Create vocabulary' }).click();
    await page.getByRole('link', { name: 'Pets' }).click();
    await page.getByText('This vocabulary has no tags yet').waitFor();

    const lines = ['cat', 'dog,0.01,puppy|doggo', 'x'.repeat(150), 'Cat', 'bird,abc', UNLUCKY];
    await page.getByLabel(/Tags, one per line/).fill(lines.join('\n'));
    await page.getByRole('button', { name: 'Add tags' }).click();
    const results = page.getByRole('list', { name: 'Results, line by line' }).locator('li');
    await results.first().waitFor();
    const texts = await results.allTextContents();
    expect(texts).toHaveLength(6);
    expect(texts[0]).toContain('✓ added as “cat”');
    expect(texts[1]).toContain('✓ added as “dog”');
    expect(texts[2]).toContain('✗ BAD_USER_INPUT');
    expect(texts[3]).toContain('✗ CONFLICT');
    expect(texts[4]).toContain('the threshold “abc” is not a number');
    expect(texts[5]).toContain('✓');
    await page.getByText('3 tags · page 1 of 1').waitFor();
    await screenshot(page, 'bulk-add');

    await page.getByLabel(/Or read a CSV file/).setInputFiles({ name: 'tags.csv', mimeType: 'text/csv', buffer: Buffer.from('name,threshold\nhamster,0.6\n"ferret, domestic",0.5\n') });
    await expect.poll(() => page.getByLabel(/Tags, one per line/).inputValue()).toContain('hamster');
    await page.getByRole('button', { name: 'Add tags' }).click();
    await page.getByText('5 tags · page 1 of 1').waitFor();

    await page.getByLabel('Select cat').check();
    await page.getByLabel('Select hamster').check();
    await page.getByRole('button', { name: 'Remove selected (2)' }).click();
    expect(await dialog().textContent()).toMatch(/cat, hamster will be removed with their descriptions/);
    await dialog().getByRole('button', { name: 'Remove tags' }).click();
    await page.getByText('3 tags · page 1 of 1').waitFor();
    expect((await page.locator('table.tags tbody th').allTextContents()).sort()).toEqual(['dog', 'ferret, domestic', UNLUCKY]);
  });

  it('generates descriptions with a live job: one tag fails with its reason, a retry succeeds, a job can be cancelled', async () => {
    await page.getByRole('button', { name: 'Generate descriptions for all' }).click();
    const job = page.locator('section.job');
    await expect.poll(() => job.getAttribute('data-state'), { timeout: 30_000 }).toMatch(/SUCCEEDED|FAILED/);
    expect(await job.getByRole('status').textContent()).toMatch(/3 of 3 tags \(100\.0 %\), 2 ready, 1 failed/);
    expect(await job.locator('.failed-items').textContent()).toMatch(new RegExp(`${UNLUCKY}: the LLM gave no usable description`));
    await expectAccessible(page, 'description job');
    await screenshot(page, 'description-job');

    llm.behave = undefined;
    await job.getByRole('button', { name: 'Retry failed tags' }).click();
    await expect.poll(() => page.locator('section.job').getByRole('status').textContent(), { timeout: 30_000 }).toMatch(/succeeded: 1 of 1 tags .* 1 ready, 0 failed/);

    // a job held up at the LLM is cancelled from the console
    llm.hold();
    try {
      await page.getByRole('button', { name: 'Generate descriptions for all' }).click();
      await page.locator('section.job[data-state="RUNNING"], section.job[data-state="QUEUED"]').waitFor();
      await page.getByRole('button', { name: 'Cancel job' }).click();
      await expect.poll(() => page.locator('section.job').getAttribute('data-state'), { timeout: 15_000 }).toBe('CANCELLED');
    } finally {
      llm.open();
      llm.release();
    }
  });

  it('shows a tag’s descriptions with source and model, and saves hand-written ones', async () => {
    await page.getByRole('button', { name: 'Descriptions of dog' }).click();
    const table = dialog().locator('table');
    await table.waitFor();
    const rows = await table.locator('tbody tr').allTextContents();
    expect(rows.filter((r) => /LLMfake-model$/.test(r)).length).toBeGreaterThan(1);
    await expectAccessible(page, 'descriptions');
    await screenshot(page, 'descriptions');
    await dialog().getByRole('button', { name: 'Edit by hand' }).click();
    await dialog().getByLabel(/Descriptions, one per line/).fill('a loyal four-legged companion\na dog fetching a ball');
    await dialog().getByRole('button', { name: 'Save descriptions' }).click();
    await expect.poll(() => table.locator('tbody tr').allTextContents()).toEqual(['a loyal four-legged companionMANUAL—', 'a dog fetching a ballMANUAL—']);
    await page.keyboard.press('Escape');
    // focus goes back to what opened the dialog
    await expect.poll(() => page.evaluate('document.activeElement?.textContent')).toBe('Descriptions of dog');
  });

  it('tags a dropped photo: scores against thresholds, why, languages, all scores; a dropped non-image is explained', async () => {
    const dog = page.locator('tr[data-tag="dog"]');
    await dog.getByLabel(/Names in other languages/).fill('fr: chien');
    await dog.getByLabel(/Names in other languages/).press('Enter');
    await dog.getByText('Saved').waitFor();

    await go('Try it');
    await page.getByLabel('Vocabulary').selectOption({ label: 'Pets (3 tags)' });
    await handOver(page.getByTestId('drop-zone'), 'drop', [
      { name: 'photo.jpg', mimeType: 'image/jpeg', buffer: photo },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('this is not an image') },
    ]);
    const result = page.getByRole('article', { name: 'Result for photo.jpg' });
    await result.getByText('Tags that passed').waitFor();
    const passedDog = result.locator('ul.scores li.passed', { hasText: 'dog' });
    expect(await passedDog.locator('.score-text').textContent()).toMatch(/^0\.\d{3} vs 0\.01 — passed$/);
    expect(await result.locator('.meta').textContent()).toMatch(/jpeg 640×480 · revision \d+ · \d+ ms in all, \d+ ms in the model/);
    await passedDog.getByText('Why').click();
    expect(await passedDog.locator('ol.why li').first().textContent()).toMatch(/^\d+\.\d % · MANUAL · a (loyal four-legged companion|dog fetching a ball)$/);
    // where the tag was seen: the heat map drawn over the photo, asked for on demand
    await passedDog.getByRole('button', { name: 'Where? dog' }).click();
    const overlay = result.getByRole('img', { name: 'Heat map of dog over the image' });
    await overlay.waitFor();
    expect(await overlay.evaluate((img) => [(img as unknown as { naturalWidth: number }).naturalWidth, (img as unknown as { naturalHeight: number }).naturalHeight])).toEqual([320, 240]);
    expect(await result.locator('figure.heatmap figcaption').textContent()).toMatch(/Where the model looked for dog · \d+\.\d % of its attention went to the whole-image token/);

    const bad = page.getByRole('article', { name: 'Result for notes.txt' });
    expect(await bad.getByRole('alert').textContent()).toMatch(/not an image the server can read|format is not supported/);
    await expectAccessible(page, 'try it');
    await screenshot(page, 'try-it');

    await page.getByLabel('Language of tag names').selectOption('fr');
    await result.locator('ul.scores li', { hasText: 'chien' }).waitFor();
    await page.getByLabel('Show all scores').check();
    await result.getByText('All scores (3)').waitFor();
    await result.getByLabel('Find a tag').fill('ferret');
    await expect.poll(() => result.locator('ul.scores').nth(1).locator(':scope > li').count()).toBe(1);
  });

  it('explains why an empty vocabulary cannot tag a pasted image', async () => {
    await gql(t.url, 'mutation { createVocabulary(input: { name: "Empty" }) { id } }', {}, adminKey);
    await page.reload();
    await page.getByLabel('Vocabulary').selectOption({ label: 'Empty (0 tags)' });
    await handOver(page.locator('body'), 'paste', [{ name: 'photo.jpg', mimeType: 'image/jpeg', buffer: photo }]);
    await page.getByText('Empty has no enabled tags yet').waitFor();
    const alert = page.locator('[role="alert"][data-code="BAD_USER_INPUT"]');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('no enabled tag with descriptions to score');
  });

  it('opens the API explorer preset with the signed-in key', async () => {
    await go('API explorer');
    await page.locator('.graphiql-container').waitFor({ timeout: 30_000 });
    await expect.poll(() => page.locator('.graphiql-query-editor').textContent()).toContain('WhoAmI');
    // GraphiQL ignores a run asked for before its editors are wired up: ask until it answers.
    await expect
      .poll(
        async () => {
          await page.getByRole('button', { name: /Execute query/ }).click();
          return page.locator('.result-window').textContent();
        },
        { timeout: 20_000, interval: 1_000 },
      )
      .toContain('Console Co');
    expect(await page.locator('.graphiql-container').textContent()).not.toContain(adminKey);
    await expectAccessible(page, 'API explorer');
    await screenshot(page, 'explorer');
  });

  it('gives a CLIENT key a read-only console plus Try it', async () => {
    const issued = await gql(t.url, 'mutation { createApiKey(input: { name: "reader", role: CLIENT }) { secret } }', {}, adminKey);
    const clientKey = issued.data!.createApiKey.secret as string;
    await page.getByRole('button', { name: 'Sign out' }).click();
    expect(await storedKeys()).toEqual([null, null]);
    await signIn(clientKey);
    await go('Vocabularies');
    await page.getByRole('heading', { name: 'Vocabularies' }).waitFor();
    expect(await storedKeys()).toEqual([clientKey, null]);
    expect(await page.getByTestId('role').textContent()).toBe('CLIENT');
    expect(await page.getByRole('navigation').getByRole('link').allTextContents()).toEqual(['Vocabularies', 'Try it', 'API explorer']);
    expect(await page.getByRole('button', { name: 'New vocabulary' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Pets' }).click();
    await page.locator('tr[data-tag="dog"]').waitFor();
    expect(await page.locator('table.tags input').count()).toBe(0);
    expect(await page.getByRole('button', { name: /Generate/ }).count()).toBe(0);
    await expectAccessible(page, 'read-only tags');
    await page.getByRole('button', { name: 'Sign out' }).click();
  });

  it('lists keys with their last use, creates one (secret shown once), and signs out when its own key is revoked', async () => {
    await signIn(adminKey);
    await go('API keys');
    const own = page.locator('tbody tr', { hasText: 'this console' });
    await own.waitFor();
    expect(await own.locator('td').nth(4).textContent()).not.toBe('never');

    await page.getByRole('button', { name: 'New key' }).click();
    await dialog().getByLabel('What the key is for').fill('Photo app');
    await dialog().getByRole('button', { name: 'Create key' }).click();
    const secret = await dialog().getByLabel('New key').inputValue();
    expect((await gql(t.url, '{ viewer { role } }', {}, secret)).data!.viewer.role).toBe('CLIENT');
    await dialog().getByRole('button', { name: 'Done' }).click();
    await page.locator('tr[data-key="Photo app"]').waitFor();
    await expectAccessible(page, 'API keys');
    await screenshot(page, 'api-keys');

    await page.locator('tr[data-key="Photo app"]').getByRole('button', { name: 'Revoke Photo app' }).click();
    await dialog().getByRole('button', { name: 'Revoke key' }).click();
    await page.locator('tr[data-key="Photo app"]').getByText(/^revoked/).waitFor();
    expect((await gql(t.url, '{ viewer { role } }', {}, secret)).errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');

    // The console's own key is revoked elsewhere, mid-session: the next request signs it out.
    const keys = await gql(t.url, '{ apiKeys { id name } }', {}, adminKey);
    const first = keys.data!.apiKeys.find((k: { name: string }) => k.name === 'First admin key').id;
    const other = await createTenantWithKeys(t.url, 'Unrelated');
    expect((await gql(t.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: first }, other.adminKey)).errors![0]!.extensions!.code).toBe('NOT_FOUND');
    await page.locator('tr[data-key="Photo app"]').waitFor();
    await gql(t.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: first }, adminKey).catch(() => undefined);
    await go('Vocabularies');
    await page.getByText('The server no longer accepts this key').waitFor();
    expect(await storedKeys()).toEqual([null, null]);
    expect(problems).toEqual([]);
  });

  it('pages through more vocabularies than one page holds', async () => {
    const many = await createTenantWithKeys(t.url, 'Many vocabularies');
    const names = Array.from({ length: 101 }, (_, i) => `set ${String(i).padStart(3, '0')}`);
    for (const n of names) await gql(t.url, 'mutation($n: String!) { createVocabulary(input: { name: $n }) { id } }', { n }, many.adminKey);
    await signIn(many.adminKey);
    await go('Vocabularies');
    await page.getByRole('link', { name: 'set 099' }).waitFor();
    expect(await page.getByRole('link', { name: 'set 100' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.getByRole('link', { name: 'set 100' }).waitFor();
    expect(await page.locator('tbody tr').count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.getByRole('link', { name: 'set 000' }).waitFor();
    expect(problems).toEqual([]);
  });
});
