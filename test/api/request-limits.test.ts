import net from 'node:net';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { databaseMode } from '../support/database.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

/**
 * Slow and stalled request bodies, and the bound on open uploads. Requests are written by hand
 * on raw sockets so a test decides exactly how much of a request is sent and when.
 */

interface Answer {
  status: number;
  head: string;
  body: string;
}

interface RawExchange {
  socket: net.Socket;
  /** The first answer on the socket; rejects if the socket closes without one. */
  answer: Promise<Answer>;
  /** Resolves when the server (or the test) closed the connection. */
  closed: Promise<void>;
  /** Whether the connection is closed by now. */
  isClosed(): boolean;
}

const exchanges: RawExchange[] = [];
afterEach(() => {
  for (const e of exchanges.splice(0)) e.socket.destroy();
});

/** Opens a connection to the app and writes `head` (a request's start line and headers, without the blank line) and `body`. */
function send(baseUrl: string, head: string, body = '', endHeaders = true): RawExchange {
  const { hostname, port } = new URL(baseUrl);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => {}); // a reset after the server closed is the expected end here
  let data = Buffer.alloc(0);
  let closed = false;
  let answered: ((a: Answer) => void) | undefined;
  let failed: ((e: Error) => void) | undefined;
  const answer = new Promise<Answer>((resolve, reject) => {
    answered = resolve;
    failed = reject;
  });
  answer.catch(() => {});
  const parse = (final: boolean) => {
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) return;
    const headText = data.subarray(0, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1]);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(headText)?.[1];
    const rest = data.subarray(end + 4);
    if (length !== undefined ? rest.length >= Number(length) : final) {
      answered?.({ status, head: headText, body: rest.subarray(0, length !== undefined ? Number(length) : rest.length).toString('utf8') });
    }
  };
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    parse(false);
  });
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      parse(true);
      failed?.(new Error('the connection closed without an answer'));
      resolve();
    }),
  );
  socket.write(head + (endHeaders ? '\r\n\r\n' : '\r\n') + body);
  const exchange = { socket, answer, closed: closedPromise, isClosed: () => closed };
  exchanges.push(exchange);
  return exchange;
}

const codeOf = (a: Answer): string | undefined => JSON.parse(a.body).errors?.[0]?.extensions?.code;

const BOUNDARY = 'omnitagtestboundary';
const field = (name: string, value: string) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
const fileHead = (name: string) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`;
const TAG_IMAGE = 'mutation($v: ID!, $f: Upload!) { tagImage(vocabularyId: $v, image: { upload: $f }) { revision } }';
const UNKNOWN_VOCABULARY = '00000000-0000-4000-8000-000000000000';

/**
 * The first part of an upload of a file of `declared` bytes: the operations, the map and
 * `sent` bytes of the file; the rest never comes unless the test writes it.
 */
function startUpload(baseUrl: string, key: string, vocabularyId: string, sent: number, declared = 100_000): RawExchange {
  const operations = JSON.stringify({ query: TAG_IMAGE, variables: { v: vocabularyId, f: null } });
  const first = field('operations', operations) + field('map', '{"0":["variables.f"]}') + fileHead('0') + 'x'.repeat(sent);
  const total = Buffer.byteLength(first) + (declared - sent) + `\r\n--${BOUNDARY}--\r\n`.length;
  const head = [
    'POST /graphql HTTP/1.1',
    'Host: localhost',
    `Authorization: Bearer ${key}`,
    'Apollo-Require-Preflight: true',
    `Content-Type: multipart/form-data; boundary=${BOUNDARY}`,
    `Content-Length: ${total}`,
  ].join('\r\n');
  return send(baseUrl, head, first);
}

/** A whole upload of `bytes`, sent at once. */
async function upload(baseUrl: string, key: string, vocabularyId: string, bytes: Uint8Array) {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query: TAG_IMAGE, variables: { v: vocabularyId, f: null } }));
  form.append('map', JSON.stringify({ 0: ['variables.f'] }));
  form.append('0', new Blob([bytes], { type: 'image/jpeg' }), 'x.jpg');
  const res = await fetch(`${baseUrl}/graphql`, { method: 'POST', body: form, headers: { authorization: `Bearer ${key}`, 'apollo-require-preflight': 'true' } });
  return { status: res.status, ...((await res.json()) as { data?: any; errors?: { extensions: { code: string; [k: string]: unknown } }[] }) };
}

async function vocabularyWithTags(url: string, tenant: TestTenant): Promise<string> {
  const id = (await gql(url, 'mutation { createVocabulary(input: { name: "V" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id as string;
  const add = await gql(url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "sky" }, { name: "sea" }]) { results { ok } } }', { v: id }, tenant.adminKey);
  expect(add.errors).toBeUndefined();
  return id;
}

describe(`request bodies must arrive in time (${databaseMode} database)`, () => {
  let t: TestApp;
  let tenant: TestTenant;
  let vocabId: string;
  let jpeg: Buffer;

  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_REQUEST_BODY_TIMEOUT_MS: '1500', OMNITAG_REQUEST_HEADERS_TIMEOUT_MS: '1500' });
    tenant = await createTenantWithKeys(t.url, 'Slow');
    vocabId = await vocabularyWithTags(t.url, tenant);
    jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#468' } }).jpeg().toBuffer();
  });
  afterAll(() => t?.stop());

  it('answers a JSON body cut short and kept open with 408 BAD_USER_INPUT and closes the connection', async () => {
    const head = ['POST /graphql HTTP/1.1', 'Host: localhost', 'Content-Type: application/json', 'Content-Length: 200'].join('\r\n');
    const stalled = send(t.url, head, '{"query":"{ health');
    const answer = await stalled.answer;
    expect(answer.status).toBe(408);
    expect(codeOf(answer)).toBe('BAD_USER_INPUT');
    expect(JSON.parse(answer.body).errors[0].message).toMatch(/did not arrive within 1500 ms/);
    await stalled.closed;
  });

  it('answers an upload whose file stops coming with 408 and ends the operation waiting for it', async () => {
    const stalled = startUpload(t.url, tenant.clientKey, vocabId, 3_000);
    const answer = await stalled.answer;
    expect(answer.status).toBe(408);
    expect(codeOf(answer)).toBe('BAD_USER_INPUT');
    await stalled.closed;
    // the server goes on serving, uploads included
    const ok = await upload(t.url, tenant.clientKey, vocabId, jpeg);
    expect(ok.errors).toBeUndefined();
    expect(ok.data.tagImage.revision).toBeGreaterThan(0);
  });

  it('closes a connection whose body stops coming after its answer was sent', async () => {
    // refused before its file is read (an unknown vocabulary): answered at once, the rest of
    // the body is to be discarded, and that must arrive in time too
    const stalled = startUpload(t.url, tenant.clientKey, UNKNOWN_VOCABULARY, 3_000);
    const answer = await stalled.answer;
    expect(answer.status).toBe(200);
    expect(codeOf(answer)).toBe('NOT_FOUND');
    await stalled.closed;
  });

  it('answers headers that stop coming with 408 and closes the connection', async () => {
    const stalled = send(t.url, 'POST /graphql HTTP/1.1\r\nHost: localhost', '', false);
    const answer = await stalled.answer;
    expect(answer.status).toBe(408);
    await stalled.closed;
  });

  it('lets a body that arrives in pieces within the limit through', async () => {
    const body = JSON.stringify({ query: '{ health { status } }' });
    const head = ['POST /graphql HTTP/1.1', 'Host: localhost', 'Content-Type: application/json', `Content-Length: ${body.length}`, 'Connection: close'].join('\r\n');
    const exchange = send(t.url, head, body.slice(0, 5));
    await new Promise((r) => setTimeout(r, 50));
    exchange.socket.write(body.slice(5));
    const answer = await exchange.answer;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).data.health.status).toBe('OK');
  });
});

describe(`open uploads are bounded per key and in all (${databaseMode} database)`, () => {
  let t: TestApp;
  let acme: TestTenant;
  let other: TestTenant;
  let vocabId: string;
  let jpeg: Buffer;

  beforeAll(async () => {
    t = await startTestApp({ OMNITAG_MAX_OPEN_UPLOADS_PER_KEY: '2', OMNITAG_MAX_OPEN_UPLOADS: '3' });
    acme = await createTenantWithKeys(t.url, 'Acme');
    other = await createTenantWithKeys(t.url, 'Other');
    vocabId = await vocabularyWithTags(t.url, acme);
    jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#864' } }).jpeg().toBuffer();
  });
  afterAll(() => t?.stop());

  /**
   * An upload that stays open: answered at once (its vocabulary does not exist, which proves it
   * was admitted), while the rest of its body never comes.
   */
  async function heldOpen(key: string): Promise<RawExchange> {
    // the previous test's uploads were closed by their clients; the server may not have seen it yet
    for (let attempt = 0; ; attempt++) {
      const held = startUpload(t.url, key, UNKNOWN_VOCABULARY, 1_000);
      const code = codeOf(await held.answer);
      if (code === 'OVERLOADED' && attempt < 100) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      expect(code).toBe('NOT_FOUND');
      expect(held.isClosed()).toBe(false);
      return held;
    }
  }

  it('refuses one upload more than a key may hold open with OVERLOADED, then admits it once one ends', async () => {
    const held = [await heldOpen(acme.clientKey), await heldOpen(acme.clientKey)];
    const refused = await upload(t.url, acme.clientKey, vocabId, jpeg);
    expect(refused.status).toBe(503);
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'OVERLOADED', limit: 'perKey', retryAfterMs: expect.any(Number) });
    // a cut-short upload that is refused is not read: its connection is closed at once
    const cutShort = startUpload(t.url, acme.clientKey, vocabId, 1_000);
    expect(codeOf(await cutShort.answer)).toBe('OVERLOADED');
    await cutShort.closed;
    // another key of the same tenant has its own share
    const admin = await upload(t.url, acme.adminKey, vocabId, jpeg);
    expect(admin.errors).toBeUndefined();
    // the stalled uploads' clients go away: their places are free again
    held[0]!.socket.destroy();
    await expect.poll(async () => (await upload(t.url, acme.clientKey, vocabId, jpeg)).errors?.[0]?.extensions.code ?? 'OK', { timeout: 10_000, interval: 50 }).toBe('OK');
  });

  it('refuses uploads over the bound in all, whoever sends them', async () => {
    await heldOpen(acme.clientKey);
    await heldOpen(acme.adminKey);
    await heldOpen(other.clientKey);
    const refused = await upload(t.url, other.adminKey, vocabId, jpeg);
    expect(refused.status).toBe(503);
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'OVERLOADED', limit: 'total' });
    // JSON requests are not uploads: they go on
    expect((await gql(t.url, '{ health { status } }')).data!.health.status).toBe('OK');
  });

  it('answers an upload with a refused key before reading its body and closes its connection', async () => {
    for (let i = 0; i < 4; i++) {
      const refused = startUpload(t.url, 'otk_not-a-real-key-000000000000000000000000', vocabId, 1_000);
      const answer = await refused.answer;
      expect(answer.status).toBe(401);
      expect(codeOf(answer)).toBe('UNAUTHENTICATED');
      await refused.closed;
    }
    await expect.poll(async () => (await upload(t.url, acme.clientKey, vocabId, jpeg)).errors?.[0]?.extensions.code ?? 'OK', { timeout: 10_000, interval: 50 }).toBe('OK');
  });
});
