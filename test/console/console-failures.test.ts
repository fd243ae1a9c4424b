/**
 * Bad paths in the browser: a busy server (OVERLOADED), an image over the size limit, and the
 * server gone. The server has an inference queue of one image and a small image limit.
 */
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { browserSkipReason, expectAccessible, launchBrowser, watchPage } from '../support/browser.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const skip = browserSkipReason();
const MAX_IMAGE_BYTES = 150_000;

describe.skipIf(skip)('the console when things go wrong', () => {
  let t: TestApp;
  let tenant: TestTenant;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let small: Buffer;
  let large: Buffer;

  beforeAll(async () => {
    [t, browser, small, large] = await Promise.all([
      startTestApp({ OMNITAG_MAX_QUEUE: '1', OMNITAG_MAX_BATCH: '1', OMNITAG_MAX_IMAGE_BYTES: String(MAX_IMAGE_BYTES) }),
      launchBrowser(),
      sharp({ create: { width: 320, height: 240, channels: 3, background: '#248' } }).jpeg().toBuffer(),
      // random pixels do not compress: well over the limit
      sharp(Buffer.from(Array.from({ length: 400 * 400 * 3 }, () => Math.floor(Math.random() * 256))), { raw: { width: 400, height: 400, channels: 3 } }).png().toBuffer(),
    ]);
    expect(large.length).toBeGreaterThan(MAX_IMAGE_BYTES);
    tenant = await createTenantWithKeys(t.url, 'Busy Co');
    const v = await gql(t.url, 'mutation { createVocabulary(input: { name: "Sky" }) { id } }', {}, tenant.adminKey);
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "sky" }, { name: "sea" }]) { results { ok } } }', { v: v.data!.createVocabulary.id }, tenant.adminKey);
    page = await (await browser.newContext({ baseURL: t.url })).newPage();
    problems = watchPage(page);
    await page.goto('/console/');
    await page.getByLabel('API key').fill(tenant.clientKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Try it' }).click();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('explains OVERLOADED when the server turns the request away, and tags once it can', async () => {
    // Two images at once do not fit an inference queue of one.
    await page.getByLabel('Choose images').setInputFiles([
      { name: 'a.jpg', mimeType: 'image/jpeg', buffer: small },
      { name: 'b.jpg', mimeType: 'image/jpeg', buffer: small },
    ]);
    const alert = page.locator('[role="alert"][data-code="OVERLOADED"]');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('The server is busy right now');
    await expectAccessible(page, 'try it, overloaded');

    await page.getByLabel('Choose images').setInputFiles([{ name: 'a.jpg', mimeType: 'image/jpeg', buffer: small }]);
    await page.getByRole('article', { name: 'Result for a.jpg' }).getByText(/Tags that passed/).waitFor();
  });

  it('explains IMAGE_TOO_LARGE', async () => {
    await page.getByLabel('Choose images').setInputFiles([{ name: 'huge.png', mimeType: 'image/png', buffer: large }]);
    const alert = page.locator('[role="alert"][data-code="IMAGE_TOO_LARGE"]');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('The image is too large for this server');
  });

  it('says the server cannot be reached when it is gone', async () => {
    await t.stop();
    await page.getByRole('link', { name: 'Vocabularies' }).click();
    const alert = page.locator('[role="alert"][data-code="NETWORK"]');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('The Omnitag server cannot be reached');
    // the key is kept: the server being down says nothing about the key
    expect(await page.evaluate(`sessionStorage.getItem('omnitag.console.key')`)).toBe(tenant.clientKey);
    expect(problems).toEqual([]);
  });
});
