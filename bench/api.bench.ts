/**
 * What the HTTP + GraphQL layer costs on top of the engine, for `tagImage` with a 1-megapixel
 * JPEG sent as base64:
 *   - concurrency 1: mean latency through HTTP vs the same work called in-process
 *     (preprocess + score against the same compiled vocabulary);
 *   - concurrency 16: requests/s through HTTP vs the engine's batched images/s with 16
 *     in-process callers.
 * The HTTP load comes from autocannon in a separate process, as a client would.
 * Usage: npx tsx bench/api.bench.ts [--pack packs/tiny] [--seconds 15] [--builtin]
 * Loopback only; every loop is bounded in time and stops by itself.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Command } from 'commander';
import sharp from 'sharp';
import { App } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';

const opts = new Command()
  .option('--pack <dir>', 'model pack', 'packs/tiny')
  .option('--seconds <n>', 'duration of each timed phase', '15')
  .option('--builtin', 'score against the 4,585 built-in tags (default: 20 custom tags)')
  .parse()
  .opts<{ pack: string; seconds: string; builtin?: boolean }>();
const seconds = Number(opts.seconds);
const ADMIN = 'bench-platform-admin-key-000000';

const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-bench-'));
const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: 'warn', OMNITAG_DATA_DIR: dataDir, OMNITAG_PLATFORM_ADMIN_KEY: ADMIN, OMNITAG_MODEL_PACK: opts.pack, OMNITAG_MAX_QUEUE: '256' });
const app = new App(config, createLogger('warn'));
await app.start();
const gqlUrl = `${app.url}/graphql`;

async function call(query: string, variables: Record<string, unknown>, key: string) {
  const res = await fetch(gqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: any; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

try {
  const tenant = (await call('mutation($n: String!) { createTenant(input: { name: $n }) { id } }', { n: `Bench ${Date.now()}` }, ADMIN)).createTenant.id;
  const key = (await call('mutation($t: ID!) { createApiKey(input: { name: "b", role: ADMIN, tenantId: $t }) { secret } }', { t: tenant }, ADMIN)).createApiKey.secret;
  const vocab = (await call('mutation($b: Boolean) { createVocabulary(input: { name: "v", fromBuiltin: $b }) { id } }', { b: !!opts.builtin }, key)).createVocabulary.id;
  if (!opts.builtin) {
    const tags = Array.from({ length: 20 }, (_, i) => ({ name: `thing ${i}` }));
    await call('mutation($v: ID!, $t: [TagInput!]!) { addTags(vocabularyId: $v, tags: $t) { results { ok } } }', { v: vocab, t: tags }, key);
  }

  // A 1-megapixel photo-like JPEG: the shared demo photo when present, else generated noise.
  const photo = await fs.readFile(path.resolve('..', 'shared', 'data', 'images', 'demo2.jpg')).catch(() => null);
  const source = photo ? sharp(photo) : sharp(Buffer.from(Array.from({ length: 1155 * 866 * 3 }, () => Math.floor(Math.random() * 256))), { raw: { width: 1155, height: 866, channels: 3 } });
  const jpeg = await source.resize(1155, 866, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
  const base64 = jpeg.toString('base64');
  const services = app.services!;
  const snapshot = await services.vocab.labelBanks.forVocabulary(tenant, vocab);
  const engineOnce = async () => {
    const pre = await services.engine.preprocess(jpeg);
    await services.engine.scoreImages([{ pixels: pre.pixels }], [snapshot.bank!], { fairnessKey: tenant });
  };
  const query = 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision tags { name score } } }';
  const httpOnce = () => call(query, { v: vocab, i: base64 }, key);


  async function sequential(fn: () => Promise<unknown>, label: string) {
    for (let i = 0; i < 5; i++) await fn(); // warm-up
    const times: number[] = [];
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      const s = performance.now();
      await fn();
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const r = { label, n: times.length, meanMs: mean, p50Ms: times[Math.floor(times.length / 2)]!, p99Ms: times[Math.floor(times.length * 0.99)]! };
    console.log(JSON.stringify(r));
    return r;
  }

  async function concurrent(fn: () => Promise<unknown>, callers: number) {
    let done = 0;
    const end = performance.now() + seconds * 1000;
    const start = performance.now();
    await Promise.all(Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        await fn();
        done++;
      }
    }));
    return done / ((performance.now() - start) / 1000);
  }

  const engine1 = await sequential(engineOnce, 'engine, concurrency 1');
  for (let i = 0; i < 5; i++) await httpOnce(); // warm-up
  const bodyFile = path.join(dataDir, 'body.json');
  await fs.writeFile(bodyFile, JSON.stringify({ query, variables: { v: vocab, i: base64 } }));
  const cannon = async (connections: number) => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      // A full-size pack answers in seconds, and 16 callers queue behind each other: a long timeout.
      [path.resolve('node_modules/autocannon/autocannon.js'), '-j', '-t', '300', '-c', String(connections), '-d', String(seconds), '-m', 'POST',
        '-H', 'content-type=application/json', '-H', `authorization=Bearer ${key}`, '-i', bodyFile, gqlUrl],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return JSON.parse(stdout) as { requests: { total: number }; latency: { average: number; p50: number; p99: number }; non2xx: number; errors: number };
  };
  const c1 = await cannon(1);
  const http1 = { meanMs: c1.latency.average };
  console.log(JSON.stringify({ label: 'HTTP tagImage, concurrency 1 (autocannon)', n: c1.requests.total, meanMs: c1.latency.average, p50Ms: c1.latency.p50, p99Ms: c1.latency.p99 }));
  const engine16 = await concurrent(engineOnce, 16);
  const c16 = await cannon(16);
  const http16 = c16.requests.total / seconds;
  const summary = {
    pack: opts.pack,
    vocabulary: opts.builtin ? '4,585 built-in tags' : '20 custom tags',
    image: '1155×866 JPEG (1.0 MP), base64',
    overheadAtConcurrency1Ms: +(http1.meanMs - engine1.meanMs).toFixed(2),
    engineMeanMs: +engine1.meanMs.toFixed(2),
    httpMeanMs: +http1.meanMs.toFixed(2),
    engineImagesPerSecondAt16: +engine16.toFixed(2),
    httpRequestsPerSecondAt16: +http16.toFixed(2),
    httpNon2xx: c1.non2xx + c16.non2xx,
    httpErrors: c1.errors + c16.errors,
    throughputRatio: +(http16 / engine16).toFixed(3),
    load: os.loadavg().map((l) => +l.toFixed(2)),
  };
  console.log(JSON.stringify(summary, null, 2));
} finally {
  await app.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
}
