/**
 * Bad paths in the browser: a busy server (OVERLOADED), an image over the size limit, and the
 * server gone. The server takes one open upload per key and small images.
 */
import net from 'node:net';
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { browserSkipReason, expectAccessible, launchBrowser, watchPage } from '../support/browser.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const skip = browserSkipReason();
const MAX_IMAGE_BYTES = 150_000;

/** An upload that starts and never finishes: it holds the key's one place for an open upload. */
function stalledUpload(baseUrl: string, key: string, vocabularyId: string): net.Socket {
  const { hostname, port } = new URL(baseUrl);
  const boundary = 'stalled';
  const part = (headers: string, body: string) => `--${boundary}\r\n${headers}\r\n\r\n${body}\r\n`;
  const query = 'mutation($v: ID!, $f: Upload!) { tagImage(vocabularyId: $v, image: { upload: $f }) { revision } }';
  const start =
    part('Content-Disposition: form-data; name="operations"', JSON.stringify({ query, variables: { v: vocabularyId, f: null } })) +
    part('Content-Disposition: form-data; name="map"', '{"0":["variables.f"]}') +
    `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="slow.jpg"\r\nContent-Type: image/jpeg\r\n\r\n` +
    'x'.repeat(1_000);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => {});
  socket.write(
    [
      'POST /graphql HTTP/1.1',
      `Host: ${hostname}:${port}`,
      `Authorization: Bearer ${key}`,
      'Apollo-Require-Preflight: true',
      `Content-Type: multipart/form-data; boundary=${boundary}`,
      `Content-Length: ${Buffer.byteLength(start) + 50_000}`,
      '',
      start,
    ].join('\r\n'),
  );
  return socket;
}

describe.skipIf(skip)('the console when things go wrong', () => {
  let t: TestApp;
  let tenant: TestTenant;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let small: Buffer;
  let large: Buffer;
  let vocabularyId: string;

  beforeAll(async () => {
    [t, browser, small, large] = await Promise.all([
      startTestApp({ OMNITAG_MAX_OPEN_UPLOADS_PER_KEY: '1', OMNITAG_MAX_IMAGE_BYTES: String(MAX_IMAGE_BYTES) }),
      launchBrowser(),
      sharp({ create: { width: 320, height: 240, channels: 3, background: '#248' } }).jpeg().toBuffer(),
      // random pixels do not compress: well over the limit
      sharp(Buffer.from(Array.from({ length: 400 * 400 * 3 }, () => Math.floor(Math.random() * 256))), { raw: { width: 400, height: 400, channels: 3 } }).png().toBuffer(),
    ]);
    expect(large.length).toBeGreaterThan(MAX_IMAGE_BYTES);
    tenant = await createTenantWithKeys(t.url, 'Busy Co');
    vocabularyId = (await gql(t.url, 'mutation { createVocabulary(input: { name: "Sky" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(t.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "sky" }, { name: "sea" }]) { results { ok } } }', { v: vocabularyId }, tenant.adminKey);
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

  it('explains OVERLOADED when the server turns the upload away, and tags once it can', async () => {
    // Another client of the same key holds its one open upload.
    const held = stalledUpload(t.url, tenant.clientKey, vocabularyId);
    const alert = page.locator('[role="alert"][data-code="OVERLOADED"]');
    // (the stalled upload may reach the server after the console's first try)
    await expect
      .poll(async () => {
        await page.getByLabel('Choose images').setInputFiles([{ name: 'a.jpg', mimeType: 'image/jpeg', buffer: small }]);
        await page.getByRole('status').filter({ hasText: 'Tagging' }).waitFor({ state: 'detached' });
        return alert.count();
      }, { timeout: 20_000, interval: 250 })
      .toBe(1);
    expect(await alert.textContent()).toContain('The server is busy right now');
    await expectAccessible(page, 'try it, overloaded');

    held.destroy();
    await expect
      .poll(async () => {
        await page.getByLabel('Choose images').setInputFiles([{ name: 'b.jpg', mimeType: 'image/jpeg', buffer: small }]);
        await page.getByRole('status').filter({ hasText: 'Tagging' }).waitFor({ state: 'detached' });
        return page.getByRole('article', { name: 'Result for b.jpg' }).count();
      }, { timeout: 20_000, interval: 250 })
      .toBe(1);
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
