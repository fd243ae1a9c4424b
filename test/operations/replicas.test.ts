import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, PLATFORM_KEY } from '../support/app.ts';
import { createMigratedDatabase, databaseMode, type TestDatabase } from '../support/database.ts';
import { FakeLlmServer } from '../support/fake-llm-server.ts';
import { nginxBinary, startNginx, type LoadBalancer } from '../support/nginx.ts';
import { startServerProcess, type ServerProcess } from '../support/server-process.ts';
import { createTenantWithKeys, type TestTenant } from '../support/tenants.ts';

const AUTH_CACHE_MS = 1_000;
const LEASE_MS = 2_000;
const TAG = 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }, options: { includeAll: true }) { revision scores { name } } }';
const JOB = 'query($id: ID!) { descriptionJob(id: $id) { state succeeded failed items(first: 100) { edges { node { attempts state tag { name descriptions { source } } } } } } }';

/** One operation straight to `url`, with the replica that answered (nginx's `x-upstream`). */
async function post(url: string, query: string, variables: Record<string, unknown>, key: string) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const upstream = res.headers.get('x-upstream');
  const body = (await res.json().catch(() => ({}))) as { data?: any; errors?: { extensions?: { code?: string } }[] };
  return { status: res.status, upstream, code: body.errors?.[0]?.extensions?.code ?? (res.ok ? 'OK' : `HTTP_${res.status}`), data: body.data };
}

const nginx = nginxBinary();
const why = databaseMode !== 'postgresql' ? 'replicas share a PostgreSQL server (run with OMNITAG_TEST_PG_SERVER)' : !nginx ? 'needs nginx (apt-get install nginx)' : undefined;

// Three real Omnitag processes on one PostgreSQL database behind a real nginx.
describe.skipIf(why)(`several replicas behind nginx${why ? ` (skipped: ${why})` : ''}`, () => {
  let db: TestDatabase;
  let llm: FakeLlmServer;
  let replicas: ServerProcess[];
  let lb: LoadBalancer;
  let dataDirs: string[];
  let tenant: TestTenant;
  let vocabId: string;
  let image: string;

  beforeAll(async () => {
    [db, llm] = await Promise.all([createMigratedDatabase(), FakeLlmServer.start()]);
    dataDirs = await Promise.all([0, 1, 2].map(() => fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-replica-'))));
    replicas = await Promise.all(
      dataDirs.map((dir) =>
        startServerProcess({
          DATABASE_URL: db.url,
          DATABASE_POOL_SIZE: '3',
          OMNITAG_MIGRATE_ON_START: 'false',
          OMNITAG_DATA_DIR: dir,
          OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY,
          OMNITAG_AUTH_CACHE_MS: String(AUTH_CACHE_MS),
          OMNITAG_LIMITS_STORE: 'postgresql',
          OMNITAG_LIMITS_CACHE_MS: '300',
          OMNITAG_INFERENCE_WORKERS: '1',
          OMNITAG_INTRA_OP_THREADS: '1',
          OMNITAG_LLM_BASE_URL: llm.url,
          OMNITAG_LLM_MODEL: 'fake-model',
          OMNITAG_LLM_MAX_RETRIES: '0',
          OMNITAG_JOB_LEASE_MS: String(LEASE_MS),
          OMNITAG_SHUTDOWN_TIMEOUT_MS: '2000',
        }),
      ),
    );
    lb = await startNginx(nginx!, replicas.map((r) => new URL(r.url).host));
    tenant = await createTenantWithKeys(lb.url, 'Everywhere');
    vocabId = (await gql(lb.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, tenant.adminKey)).data!.createVocabulary.id;
    await gql(lb.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }, { name: "dog" }]) { results { ok } } }', { v: vocabId }, tenant.adminKey);
    image = (await sharp({ create: { width: 48, height: 32, channels: 3, background: '#39c' } }).jpeg().toBuffer()).toString('base64');
  }, 180_000);

  afterAll(async () => {
    await lb?.stop();
    await Promise.all((replicas ?? []).map((r) => (r.child.exitCode === null && r.child.signalCode === null ? r.stop('SIGTERM') : undefined)));
    await llm?.close();
    await db?.drop();
    await Promise.all((dataDirs ?? []).map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  it('spreads requests over every replica', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await post(lb.url, '{ viewer { role } }', {}, tenant.clientKey)).upstream!);
    expect(seen.size).toBe(3);
  });

  it('scores a vocabulary edited on one replica at the new revision on the others', async () => {
    // every replica compiles and caches the current revision first
    const before = await Promise.all(replicas.map((r) => post(r.url, TAG, { v: vocabId, i: image }, tenant.clientKey)));
    const revision = before[0]!.data.tagImage.revision as number;
    expect(before.map((r) => r.data.tagImage.revision)).toEqual([revision, revision, revision]);
    const edit = await post(replicas[0]!.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "owl" }]) { vocabulary { revision } } }', { v: vocabId }, tenant.adminKey);
    expect(edit.data.addTags.vocabulary.revision).toBe(revision + 1);
    for (const r of replicas.slice(1)) {
      const after = await post(r.url, TAG, { v: vocabId, i: image }, tenant.clientKey);
      expect(after.data.tagImage.revision).toBe(revision + 1);
      expect(after.data.tagImage.scores.map((s: any) => s.name).sort()).toEqual(['cat', 'dog', 'owl']);
    }
  });

  it('holds a tenant to its rate across replicas', async () => {
    const limited = await createTenantWithKeys(lb.url, 'Limited everywhere');
    const v = (await gql(lb.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, limited.adminKey)).data!.createVocabulary.id;
    await gql(lb.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "cat" }]) { results { ok } } }', { v }, limited.adminKey);
    await gql(lb.url, 'mutation($t: ID!) { setTenantLimits(tenantId: $t, input: { imagesPerMinute: 4 }) { id } }', { t: limited.id }, PLATFORM_KEY);
    await new Promise((r) => setTimeout(r, 400)); // past OMNITAG_LIMITS_CACHE_MS on every replica
    const answers = [];
    for (let i = 0; i < 9; i++) answers.push(await post(lb.url, TAG, { v, i: image }, limited.clientKey));
    // each replica alone (counters in memory) would have allowed 4
    expect(answers.filter((a) => a.code === 'OK').length).toBe(4);
    expect(answers.filter((a) => a.code === 'RATE_LIMITED').length).toBe(5);
    expect(new Set(answers.map((a) => a.upstream)).size).toBe(3);
  });

  it('stops a revoked key on every replica within OMNITAG_AUTH_CACHE_MS', async () => {
    const issued = await gql(lb.url, 'mutation { createApiKey(input: { name: "short-lived", role: CLIENT }) { apiKey { id } secret } }', {}, tenant.adminKey);
    const { apiKey, secret } = issued.data!.createApiKey;
    // every replica has the key in its cache
    for (const r of replicas) expect((await post(r.url, '{ viewer { role } }', {}, secret)).code).toBe('OK');
    const revoked = await post(replicas[0]!.url, 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', { id: apiKey.id }, tenant.adminKey);
    expect(revoked.data.revokeApiKey.revokedAt).toBeTruthy();
    expect((await post(replicas[0]!.url, '{ viewer { role } }', {}, secret)).code).toBe('UNAUTHENTICATED');
    await new Promise((r) => setTimeout(r, AUTH_CACHE_MS + 200));
    for (const r of replicas) expect((await post(r.url, '{ viewer { role } }', {}, secret)).code).toBe('UNAUTHENTICATED');
  });

  /** Adds `names` and starts a job for them at `url`; the job's id. */
  const startJob = async (url: string, names: string[]) => {
    const added = await post(url, 'mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { tag { id } } } }', { v: vocabId, t: names.map((name) => ({ name })) }, tenant.adminKey);
    const ids = added.data.addTags.results.map((r: any) => r.tag.id);
    const job = await post(url, 'mutation($v: ID!, $t: [ID!]) { generateDescriptions(vocabularyId: $v, tagIds: $t) { id } }', { v: vocabId, t: ids }, tenant.adminKey);
    return job.data.generateDescriptions.id as string;
  };
  const finished = async (id: string) => {
    for (let i = 0; i < 200; i++) {
      const job = (await post(lb.url, JOB, { id }, tenant.adminKey)).data?.descriptionJob;
      if (job && /SUCCEEDED|FAILED/.test(job.state)) return job;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('the job did not finish');
  };
  const llmDescriptions = (job: any) => job.items.edges.map((e: any) => e.node.tag.descriptions.filter((d: any) => d.source === 'LLM').length);
  let perTag = 0;

  it('processes each description-job item exactly once, whichever replica claims it', async () => {
    llm.reset();
    const names = Array.from({ length: 9 }, (_, i) => `thing ${i}`);
    const job = await finished(await startJob(lb.url, names));
    expect(job).toMatchObject({ state: 'SUCCEEDED', succeeded: 9, failed: 0 });
    expect(job.items.edges.map((e: any) => e.node.attempts)).toEqual(Array(9).fill(1));
    const requestsPerTag = names.map((n) => llm.requests.filter((r) => r.tag === n).length);
    expect(new Set(requestsPerTag).size).toBe(1);
    expect(requestsPerTag[0]).toBeGreaterThan(0);
    perTag = llmDescriptions(job)[0];
    expect(perTag).toBeGreaterThan(0);
    expect(llmDescriptions(job)).toEqual(Array(9).fill(perTag));
  });

  it('loses no committed work when a replica is killed under load, and its job items finish elsewhere', async () => {
    llm.reset();
    llm.hold();
    // Started on replica 0, whose worker is woken at once and claims first.
    const jobId = await startJob(replicas[0]!.url, Array.from({ length: 6 }, (_, i) => `kept ${i}`));
    await llm.waitForRequests(1);
    // tagging load through nginx while replica 0 dies
    let stop = false;
    const outcomes: string[] = [];
    const load = Promise.all(
      [0, 1].map(async () => {
        for (let i = 0; i < 40 && !stop; i++) outcomes.push((await post(lb.url, TAG, { v: vocabId, i: image }, tenant.clientKey).catch(() => ({ code: 'NETWORK' }))).code);
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(await replicas[0]!.stop('SIGKILL')).toBe('SIGKILL');
    const atKill = outcomes.length;
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await load;
    // at most the requests in flight at replica 0 when it died fail; the rest are served
    expect(outcomes.filter((c) => c !== 'OK').length).toBeLessThanOrEqual(2);
    expect(outcomes.slice(atKill + 2).every((c) => c === 'OK')).toBe(true);
    expect(outcomes.length).toBeGreaterThan(atKill + 2);

    llm.open();
    llm.release();
    const job = await finished(jobId);
    expect(job).toMatchObject({ state: 'SUCCEEDED', succeeded: 6, failed: 0 });
    // items replica 0 held were claimed again once their lease ran out, and written once
    expect(job.items.edges.some((e: any) => e.node.attempts >= 2)).toBe(true);
    expect(llmDescriptions(job)).toEqual(Array(6).fill(perTag));
    // everything committed before the kill is still there
    const tags = await post(lb.url, 'query($v: ID!) { vocabulary(id: $v) { tags(first: 100) { totalCount } } }', { v: vocabId }, tenant.clientKey);
    expect(tags.data.vocabulary.tags.totalCount).toBe(3 + 9 + 6);
  });
});
