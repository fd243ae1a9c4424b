/**
 * Per-tenant rate limiting (issue 14), two measurements against real server processes:
 *
 *   1. overhead: what counting a request costs, with the counters in memory, in PostgreSQL and
 *      in Redis. One server per store; two tenants, one without a request limit (no counter is
 *      touched) and one with a limit it never reaches. `{ viewer { role } }` (auth cached, no
 *      inference) is sent for each in random order, pair after pair; the overhead is the mean
 *      of the pairs' differences with its 95 % confidence interval.
 *   2. a noisy tenant: a quiet tenant tags one small image every `--pace` ms; its latency is
 *      taken alone, while a noisy tenant limited to `--limit` requests per second sends exactly
 *      that many `tagImage` requests, and while it sends ten times as many (from another
 *      process, open loop). The three phases run in random order for `--rounds` rounds of
 *      `--seconds` each. What the limit must keep from the quiet tenant is the noise beyond it:
 *      the target compares its p95 under the 10× noise with its p95 under noise at the limit
 *      (work the noisy tenant is entitled to); the p95 alone is shown too.
 *
 *   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres OMNITAG_REDIS_URL=redis://127.0.0.1:6379 \
 *     npx tsx bench/limits.bench.ts [--pairs 400] [--rounds 3] [--seconds 6] [--limit 10] [--pace 50] [--noisy-store postgresql] [--client-priority idle] [--no-overhead]
 *
 * The noisy client shares the server's two cores, where a real one would not: by default it runs
 * under Linux's SCHED_IDLE policy (`chrt --idle`: any runnable server thread takes the core from
 * it at once), `--client-priority nice` at nice 19 (weighted, so it can still hold a core for a
 * scheduler slice), `--client-priority same` at the server's own priority.
 *
 * DATABASE_URL: a PostgreSQL server where the benchmark creates (and drops) a scratch database.
 * Without OMNITAG_REDIS_URL the Redis store is left out. Tiny pack (OMNITAG_MODEL_PACK to change).
 * Loopback only; every loop is bounded.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import sharp from 'sharp';
import { applyMigrations } from '../src/db/migrate.ts';

const PLATFORM_KEY = 'bench-platform-admin-key-0123456789';
const repoRoot = path.resolve(import.meta.dirname, '..');

// ------------------------------------------------------------ the noisy client (forked)

if (process.argv[2] === '--noisy-client') {
  // open loop: `rate` requests per second, whatever the answers; counts answers by code. Plain
  // node:http over keep-alive sockets: the client shares the machine, so it is kept light.
  const [, , , url, key, bodyFile, rateText] = process.argv;
  const body = await fs.readFile(bodyFile!);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const post = () =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(url!, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${key}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  const codes: Record<string, number> = {};
  let running = true;
  process.on('message', (m) => {
    if (m === 'stop') running = false;
  });
  const interval = 1000 / Number(rateText);
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  for (let i = 0; running && i < 1_000_000; i++) {
    const p = post()
      .then(({ status, text }) => {
        const code = status === 200 && !text.includes('"errors"') ? 'OK' : (/"code":"([A-Z_]+)"/.exec(text)?.[1] ?? `HTTP_${status}`);
        codes[code] = (codes[code] ?? 0) + 1;
      })
      .catch(() => {
        codes.NETWORK = (codes.NETWORK ?? 0) + 1;
      });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    const next = started + (i + 1) * interval;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  await Promise.all(inFlight);
  agent.destroy();
  const cpu = process.cpuUsage();
  codes.clientCpuMs = Math.round((cpu.user + cpu.system) / 1000);
  process.send!(codes);
  process.disconnect();
  process.exit(0);
}

// ------------------------------------------------------------ settings

const arg = (name: string, fallback: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1]! : fallback;
};
const PAIRS = Number(arg('pairs', '400'));
const ROUNDS = Number(arg('rounds', '3'));
const SECONDS = Number(arg('seconds', '6'));
const LIMIT = Number(arg('limit', '10'));
const PACE_MS = Number(arg('pace', '50'));
const NOISY_STORE = arg('noisy-store', 'postgresql');
const CLIENT_PRIORITY = arg('client-priority', 'idle');
if (!['idle', 'nice', 'same'].includes(CLIENT_PRIORITY)) throw new Error('--client-priority: idle, nice or same');
const serverUrl = process.env.DATABASE_URL;
const redisUrl = process.env.OMNITAG_REDIS_URL;
if (!serverUrl || !/^postgres(ql)?:/.test(serverUrl)) {
  console.error('limits.bench needs PostgreSQL: DATABASE_URL=postgresql://… (a server where it may create a database)');
  process.exit(2);
}

// ------------------------------------------------------------ helpers

interface Server {
  url: string;
  /** CPU time the server process has used so far (Linux /proc), in ms. */
  cpuMs(): Promise<number>;
  stop(): Promise<void>;
}

/** `src/main.ts` in its own process, as `npm start` runs it. */
async function startServer(env: Record<string, string>): Promise<Server> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', OMNITAG_PLATFORM_ADMIN_KEY: PLATFORM_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready:\n${out}`)), 120_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Omnitag ready at (http:\/\/[^\s]+)\/graphql/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`server exited (${code}):\n${out}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url,
    async cpuMs() {
      const fields = (await fs.readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 1/100 s
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function gql(url: string, query: string, variables: Record<string, unknown>, key: string): Promise<any> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: any; errors?: unknown[] };
  if (body.errors) throw new Error(`${query.slice(0, 40)}…: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function tenant(url: string, name: string, limits: Record<string, number>): Promise<{ id: string; key: string }> {
  const { createTenant } = await gql(url, 'mutation($n: String!) { createTenant(input: { name: $n }) { id } }', { n: name }, PLATFORM_KEY);
  const { createApiKey } = await gql(url, 'mutation($t: ID!) { createApiKey(input: { name: "bench", role: ADMIN, tenantId: $t }) { secret } }', { t: createTenant.id }, PLATFORM_KEY);
  await gql(url, 'mutation($t: ID!, $i: TenantLimitsInput!) { setTenantLimits(tenantId: $t, input: $i) { id } }', { t: createTenant.id, i: limits }, PLATFORM_KEY);
  return { id: createTenant.id, key: createApiKey.secret };
}

/** One timed POST of a prepared body; the time in ms and whether it succeeded. */
async function timed(url: string, body: string, key: string): Promise<{ ms: number; ok: boolean }> {
  const sent = performance.now();
  const res = await fetch(`${url}/graphql`, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` } });
  const text = await res.text();
  return { ms: performance.now() - sent, ok: res.status === 200 && !text.includes('"errors"') };
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ci95 = (xs: number[]) => {
  const m = mean(xs);
  return 1.96 * Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1) / xs.length);
};
const f = (x: number, d = 2) => x.toFixed(d);

// ------------------------------------------------------------ the scratch database

const dbName = `omnitag_bench_limits_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = Object.assign(new URL(serverUrl), { pathname: `/${dbName}` }).toString();
await applyMigrations(dbUrl);
const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-bench-limits-'));
const common = { DATABASE_URL: dbUrl, OMNITAG_MIGRATE_ON_START: 'false', OMNITAG_DATA_DIR: dataDir, OMNITAG_MODEL_PACK: process.env.OMNITAG_MODEL_PACK ?? 'packs/tiny' };

try {
  console.log(`# limits.bench ${new Date().toISOString()} · ${os.cpus().length} CPUs · load ${os.loadavg().map((l) => f(l)).join(' ')}`);
  console.log(`# ${process.argv.slice(2).join(' ') || '(defaults)'}`);

  // ---------------------------------------------------------- 1. overhead per store
  const stores = process.argv.includes('--no-overhead') ? [] : ['memory', 'postgresql', ...(redisUrl ? ['redis'] : [])];
  console.log('\n## overhead of counting a request (`{ viewer { role } }`, pairs in random order)');
  console.log('| store | pairs | unlimited p50 | limited p50 | overhead (mean of pair differences) |');
  console.log('|---|---|---|---|---|');
  const VIEWER = JSON.stringify({ query: '{ viewer { role } }' });
  for (const store of stores) {
    const server = await startServer({ ...common, OMNITAG_LIMITS_STORE: store, ...(store === 'redis' ? { OMNITAG_REDIS_URL: redisUrl! } : {}) });
    try {
      const off = await tenant(server.url, `off ${store}`, { requestsPerSecond: 0 });
      const on = await tenant(server.url, `on ${store}`, { requestsPerSecond: 1_000_000 });
      for (let i = 0; i < 50; i++) await Promise.all([timed(server.url, VIEWER, off.key), timed(server.url, VIEWER, on.key)]); // warm-up
      const offMs: number[] = [];
      const onMs: number[] = [];
      const diffs: number[] = [];
      for (let i = 0; i < PAIRS; i++) {
        const order = Math.random() < 0.5;
        const a = await timed(server.url, VIEWER, order ? off.key : on.key);
        const b = await timed(server.url, VIEWER, order ? on.key : off.key);
        if (!a.ok || !b.ok) throw new Error('a request failed');
        const [o, n] = order ? [a.ms, b.ms] : [b.ms, a.ms];
        offMs.push(o);
        onMs.push(n);
        diffs.push(n - o);
      }
      console.log(`| ${store} | ${PAIRS} | ${f(quantile(offMs, 0.5))} ms | ${f(quantile(onMs, 0.5))} ms | **${diffs.length ? (mean(diffs) >= 0 ? '+' : '') + f(mean(diffs), 3) : '–'} ms** ± ${f(ci95(diffs), 3)} |`);
    } finally {
      await server.stop();
    }
  }

  // ---------------------------------------------------------- 2. a noisy tenant
  console.log(`\n## a noisy tenant at 10× its limit (${LIMIT} requests/s; it sends ${LIMIT * 10}/s) vs a quiet tenant's latency (counters in ${NOISY_STORE})`);
  const server = await startServer({ ...common, OMNITAG_LIMITS_STORE: NOISY_STORE, ...(NOISY_STORE === 'redis' ? { OMNITAG_REDIS_URL: redisUrl! } : {}) });
  try {
    const quiet = await tenant(server.url, 'quiet', { requestsPerSecond: 0, imagesPerMinute: 0 });
    const noisy = await tenant(server.url, 'noisy', { requestsPerSecond: LIMIT, imagesPerMinute: 0 });
    const image = (await sharp({ create: { width: 320, height: 240, channels: 3, background: '#5a7' } }).jpeg().toBuffer()).toString('base64');
    const bodies = new Map<string, string>();
    for (const t of [quiet, noisy]) {
      const { createVocabulary } = await gql(server.url, 'mutation { createVocabulary(input: { name: "v" }) { id } }', {}, t.key);
      await gql(server.url, 'mutation($v: ID!) { addTags(vocabularyId: $v, tags: [{ name: "leaf" }, { name: "stone" }, { name: "sky" }]) { results { ok } } }', { v: createVocabulary.id }, t.key);
      bodies.set(t.key, JSON.stringify({ query: 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision } }', variables: { v: createVocabulary.id, i: image } }));
    }
    const noisyBody = path.join(dataDir, 'noisy.json');
    await fs.writeFile(noisyBody, bodies.get(noisy.key)!);
    for (let i = 0; i < 30; i++) await timed(server.url, bodies.get(quiet.key)!, quiet.key); // warm-up

    const quietPhase = async (): Promise<number[]> => {
      const times: number[] = [];
      const end = performance.now() + SECONDS * 1000;
      while (performance.now() < end) {
        const r = await timed(server.url, bodies.get(quiet.key)!, quiet.key);
        if (!r.ok) throw new Error('the quiet tenant was refused');
        times.push(r.ms);
        await new Promise((res) => setTimeout(res, Math.max(0, PACE_MS - r.ms)));
      }
      return times;
    };
    const phases = { alone: [] as number[], atLimit: [] as number[], tenTimes: [] as number[] };
    const serverCpu = { alone: 0, atLimit: 0, tenTimes: 0 };
    const noisyCodes = { atLimit: {} as Record<string, number>, tenTimes: {} as Record<string, number> };
    for (let round = 0; round < ROUNDS; round++) {
      const order = (['alone', 'atLimit', 'tenTimes'] as const).map((p) => [Math.random(), p] as const).sort((a, b) => a[0] - b[0]).map(([, p]) => p);
      for (const phase of order) {
        const cpuBefore = await server.cpuMs();
        if (phase === 'alone') {
          phases.alone.push(...(await quietPhase()));
          serverCpu.alone += (await server.cpuMs()) - cpuBefore;
          continue;
        }
        const rate = phase === 'atLimit' ? LIMIT : LIMIT * 10;
        const client = fork(import.meta.filename, ['--noisy-client', `${server.url}/graphql`, noisy.key, noisyBody, String(rate)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
        // the noisy client shares this machine's cores with the server, where a real one would
        // not: kept out of the server's way, its own CPU stays out of what the quiet tenant measures
        if (CLIENT_PRIORITY === 'idle') execFileSync('chrt', ['--all-tasks', '--idle', '-p', '0', String(client.pid)]);
        if (CLIENT_PRIORITY === 'nice') os.setPriority(client.pid!, 19);
        const codes = new Promise<Record<string, number>>((res) => client.once('message', (m) => res(m as Record<string, number>)));
        await new Promise((r) => setTimeout(r, 1_000)); // the client has started and the noise is under way
        const cpuStart = await server.cpuMs();
        phases[phase].push(...(await quietPhase()));
        serverCpu[phase] += (await server.cpuMs()) - cpuStart;
        client.send('stop');
        for (const [c, n] of Object.entries(await codes)) noisyCodes[phase][c] = (noisyCodes[phase][c] ?? 0) + n;
      }
    }
    const busy = (p: keyof typeof serverCpu) => `${f((serverCpu[p] / (ROUNDS * SECONDS * 1000)) * 100, 0)} %`;
    console.log('| quiet tenant | requests | p50 | p95 | server CPU | noisy tenant sends | its answers (and its client\'s CPU ms) |');
    console.log('|---|---|---|---|---|---|---|');
    console.log(`| alone | ${phases.alone.length} | ${f(quantile(phases.alone, 0.5))} ms | ${f(quantile(phases.alone, 0.95))} ms | ${busy('alone')} | – | – |`);
    console.log(`| noisy tenant at its limit | ${phases.atLimit.length} | ${f(quantile(phases.atLimit, 0.5))} ms | ${f(quantile(phases.atLimit, 0.95))} ms | ${busy('atLimit')} | ${LIMIT}/s | ${JSON.stringify(noisyCodes.atLimit)} |`);
    console.log(`| noisy tenant at 10× its limit | ${phases.tenTimes.length} | ${f(quantile(phases.tenTimes, 0.5))} ms | ${f(quantile(phases.tenTimes, 0.95))} ms | ${busy('tenTimes')} | ${LIMIT * 10}/s | ${JSON.stringify(noisyCodes.tenTimes)} |`);
    const change = (a: number[], b: number[]) => `${f((quantile(a, 0.95) / quantile(b, 0.95) - 1) * 100, 1)} %`;
    // how far the p95 ratio moves with the samples drawn: a bootstrap of both phases
    const resample = (xs: number[]) => Array.from(xs, () => xs[Math.floor(Math.random() * xs.length)]!);
    const ratios = Array.from({ length: 1000 }, () => quantile(resample(phases.tenTimes), 0.95) / quantile(resample(phases.atLimit), 0.95) - 1).sort((a, b) => a - b);
    const interval = `95 % bootstrap interval ${f(ratios[25]! * 100, 1)} % … ${f(ratios[974]! * 100, 1)} %`;
    console.log(`\nquiet p95, noise at 10× vs at the limit: **${change(phases.tenTimes, phases.atLimit)}** (${interval}; target ≤ +10 %); vs alone: ${change(phases.tenTimes, phases.alone)}`);
  } finally {
    await server.stop();
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await fs.rm(dataDir, { recursive: true, force: true });
}
