import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { READ_GRACE_MS } from '../../src/db/client.ts';
import { PLATFORM_KEY, type GraphQLResponse } from '../support/app.ts';
import { createMigratedDatabase, databaseMode, type TestDatabase } from '../support/database.ts';
import { startServerProcess, type ServerProcess } from '../support/server-process.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

/**
 * The real server process talks to its database through a TCP proxy that refuses, resets and
 * silently drops traffic, while clients keep reading, writing and tagging. Whatever the outage,
 * the process stays up, every request ends in bounded time with a success or
 * DATABASE_UNAVAILABLE, and service comes back by itself once the database is reachable again.
 * The server runs with the default timeouts (README, "Failure behaviour").
 */

const timeouts = loadConfig({}).database.timeouts;
/**
 * The longest a request may take while the database does not answer: a wait for a connection, a
 * new connection's own timeout and one statement's read timeout, one after the other, plus a
 * wide margin for a busy machine. Generous on purpose: this proves that waits are bounded, not
 * how fast they are.
 */
const REQUEST_BOUND_MS = 2 * timeouts.connectMs + timeouts.statementMs + READ_GRACE_MS + 15_000;
/** The client gives up after this: a request still running then counts as hung. */
const HARD_LIMIT_MS = REQUEST_BOUND_MS + 20_000;
/** How long after the path heals every kind of request must have succeeded again. */
const RECOVERY_MS = 30_000;
/** Pause between one worker's requests, so instant failures do not spin. */
const PAUSE_MS = 150;
/** Requests per worker at most: every loop is bounded in count as well as in time. */
const MAX_REQUESTS_PER_WORKER = 2_000;

type Kind = 'read' | 'write' | 'tag' | 'auth' | 'health';
interface Outcome {
  kind: Kind;
  startedAt: number;
  endedAt: number;
  /** 'OK', an error code, or `HTTP <status>` / `NETWORK <message>` for answers that are not GraphQL. */
  code: string;
}

const READ = 'query($v: ID!) { vocabulary(id: $v) { revision tags(first: 20) { totalCount edges { node { name } } } } }';
const WRITE = 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok error { code } } } }';
const TAG = 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision } }';
const HEALTH = '{ health { status database } }';
const VIEWER = '{ viewer { role } }';

/** What each kind may answer: success, or the database's code; the unknown key is refused while the database answers. */
const ALLOWED: Record<Kind, string[]> = {
  read: ['OK', 'DATABASE_UNAVAILABLE'],
  write: ['OK', 'DATABASE_UNAVAILABLE'],
  tag: ['OK', 'DATABASE_UNAVAILABLE'],
  auth: ['UNAUTHENTICATED', 'DATABASE_UNAVAILABLE'],
  health: ['OK'],
};
/** The answer that shows a kind works again after an outage. */
const RECOVERED: Record<Kind, string> = { read: 'OK', write: 'OK', tag: 'OK', auth: 'UNAUTHENTICATED', health: 'OK' };

async function post(url: string, query: string, variables: Record<string, unknown>, key: string | undefined): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${url}/graphql`, {
      method: 'POST',
      signal: AbortSignal.timeout(HARD_LIMIT_MS),
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    return `NETWORK ${(e as Error).name}: ${(e as Error).message}`;
  }
  let body: Omit<GraphQLResponse, 'status'>;
  try {
    body = (await res.json()) as Omit<GraphQLResponse, 'status'>;
  } catch (e) {
    return `HTTP ${res.status} ${(e as Error).message}`;
  }
  const top = body.errors?.[0]?.extensions?.code;
  if (top) return String(top);
  // addTags answers per item: an item's error is the request's
  const items = (body.data as { addTags?: { results: { ok: boolean; error: { code: string } | null }[] } } | null | undefined)?.addTags?.results ?? [];
  const itemError = items.find((r) => !r.ok)?.error?.code;
  return itemError ?? 'OK';
}

describe(`database outages under load (${databaseMode} database behind a proxy)`, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let server: ServerProcess;
  let dataDir: string;
  let tenant: TestTenant;
  let vocabId: string;
  let image: string;
  const outcomes: Outcome[] = [];

  beforeAll(async () => {
    // Embedded mode: the embedded database's socket server runs in this process (one
    // connection, as the server's own would), so the proxy can stand between it and the server.
    db = await createMigratedDatabase();
    const target = new URL(db.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-faults-'));
    server = await startServerProcess({
      DATABASE_URL: proxy.urlFor(db.url),
      DATABASE_POOL_SIZE: databaseMode === 'embedded' ? '1' : '4',
      OMNITAG_MIGRATE_ON_START: 'false',
      OMNITAG_DATA_DIR: dataDir,
      OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY,
      // Verified keys stay trusted, so reads, writes and tagging reach their own queries during
      // an outage; the unknown key below exercises authentication's.
      OMNITAG_AUTH_CACHE_MS: '600000',
    });
    tenant = await createTenantWithKeys(server.url, 'Outages');
    const created = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.adminKey}` },
      body: JSON.stringify({ query: 'mutation { createVocabulary(input: { name: "v" }) { id } }' }),
    });
    vocabId = ((await created.json()) as { data: { createVocabulary: { id: string } } }).data.createVocabulary.id;
    image = (await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a6' } }).jpeg().toBuffer()).toString('base64');
    expect(await post(server.url, WRITE, { v: vocabId, t: [{ name: 'sky' }] }, tenant.adminKey)).toBe('OK');
    expect(await post(server.url, TAG, { v: vocabId, i: image }, tenant.clientKey)).toBe('OK');
    // the key the authenticator has verified is cached; this one never is
    expect(await post(server.url, VIEWER, {}, tenant.clientKey)).toBe('OK');
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
    await proxy?.close();
    await db?.whenIdle();
    await db?.drop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('stays up, answers every request in bounded time with a typed code, and recovers by itself', async () => {
    let running = true;
    let written = 0;
    const unknownKey = `otk_${randomBytes(32).toString('base64url')}`;
    const request: Record<Kind, () => Promise<string>> = {
      read: () => post(server.url, READ, { v: vocabId }, tenant.clientKey),
      write: () => post(server.url, WRITE, { v: vocabId, t: [{ name: `tag ${++written}` }] }, tenant.adminKey),
      tag: () => post(server.url, TAG, { v: vocabId, i: image }, tenant.clientKey),
      auth: () => post(server.url, VIEWER, {}, unknownKey),
      health: () => post(server.url, HEALTH, {}, undefined),
    };
    const worker = async (kind: Kind) => {
      for (let i = 0; running && i < MAX_REQUESTS_PER_WORKER; i++) {
        const startedAt = Date.now();
        const code = await request[kind]();
        outcomes.push({ kind, startedAt, endedAt: Date.now(), code });
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
    };
    const kinds: Kind[] = ['read', 'read', 'write', 'tag', 'tag', 'auth', 'health'];
    const load = Promise.all(kinds.map(worker));
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const heals: { mode: string; at: number; recoveredAfterMs: number }[] = [];

    /** Waits until every kind has answered as it should since `since`; fails after RECOVERY_MS. */
    const recovered = async (mode: string, since: number) => {
      const deadline = since + RECOVERY_MS;
      const pending = () => (['read', 'write', 'tag', 'auth'] as Kind[]).filter((k) => !outcomes.some((o) => o.kind === k && o.startedAt >= since && o.code === RECOVERED[k]));
      while (pending().length > 0) {
        if (Date.now() > deadline) throw new Error(`after the ${mode} outage, ${pending().join(', ')} did not recover within ${RECOVERY_MS} ms`);
        await sleep(200);
      }
      heals.push({ mode, at: since, recoveredAfterMs: Date.now() - since });
    };
    const outage = async (mode: 'refuse' | 'reset' | 'blackhole', ms: number, heal: { resetHeld?: boolean } = {}) => {
      await proxy.setMode(mode);
      await sleep(ms);
      expect(server.child.exitCode).toBeNull();
      await proxy.heal(heal);
      await recovered(`${mode} ${ms} ms`, Date.now());
      await sleep(1_000);
    };

    try {
      await recovered('start', Date.now());
      await sleep(2_000);
      await outage('refuse', 3_000);
      await outage('reset', 3_000);
      await outage('blackhole', 5_000);
      await outage('blackhole', 5_000);
      // A long partition, after which the server has ended every session of the outage: the
      // pool's idle connections are reset when the path comes back.
      await outage('blackhole', 30_000, { resetHeld: true });
    } finally {
      running = false;
      await load;
    }

    // The process never exited, and nothing went unhandled.
    expect(server.child.exitCode).toBeNull();
    expect(server.output()).not.toMatch(/uncaught|unhandled|ERR_UNHANDLED|"level":60/i);

    // Every request ended within the bound, with a code its kind may answer.
    const slowest = Math.max(...outcomes.map((o) => o.endedAt - o.startedAt));
    const unexpected = outcomes.filter((o) => !ALLOWED[o.kind].includes(o.code));
    expect(unexpected.map((o) => `${o.kind}: ${o.code}`)).toEqual([]);
    expect(slowest).toBeLessThanOrEqual(REQUEST_BOUND_MS);
    // The outages were felt: each kind that needs the database failed with its code at times.
    for (const kind of ['read', 'write', 'tag', 'auth'] as Kind[]) {
      expect(outcomes.some((o) => o.kind === kind && o.code === 'DATABASE_UNAVAILABLE')).toBe(true);
    }
    const failures = outcomes.filter((o) => o.code === 'DATABASE_UNAVAILABLE').map((o) => o.endedAt - o.startedAt);
    console.info(
      JSON.stringify({
        requests: outcomes.length,
        unavailable: failures.length,
        slowestMs: slowest,
        slowestUnavailableMs: Math.max(...failures),
        medianUnavailableMs: failures.sort((a, b) => a - b)[Math.floor(failures.length / 2)],
        recovery: heals.map((h) => `${h.mode}: ${h.recoveredAfterMs} ms`),
      }),
    );
  }, 300_000);
});
