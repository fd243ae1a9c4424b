/**
 * What the HTTP + GraphQL layer costs on top of the engine, for `tagImage` with a 1-megapixel
 * JPEG (base64 in the JSON body, or a GraphQL multipart upload with --upload):
 *   - concurrency 1: latency through HTTP against the same work called in-process (preprocess
 *     + score against the same compiled vocabulary), in pairs of one each, in random order;
 *   - concurrency 16: requests/s through HTTP vs the engine's batched images/s with 16
 *     in-process callers.
 * The HTTP requests come from bench/http-client.ts in its own process, as a client's would.
 * The concurrency-16 phases alternate too, for --rounds rounds; the summary gives each round
 * and the medians.
 * Usage: npx tsx bench/api.bench.ts [--pack packs/tiny] [--seconds 10] [--rounds 3] [--builtin] [--upload] [--image FILE] [--only16]
 * --image sends that file as it is (e.g. a 12 MP photo) instead of the 1 MP JPEG; --only16 runs
 * the concurrency-16 phases only (HTTP requests/s = images/s).
 * Loopback only; every loop is bounded in time and stops by itself.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFile, fork } from 'node:child_process';
import { promisify } from 'node:util';
import { Command } from 'commander';
import sharp from 'sharp';
import { App } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/core/log.ts';

const opts = new Command()
  .option('--pack <dir>', 'model pack', 'packs/tiny')
  .option('--seconds <n>', 'duration of each timed phase', '10')
  .option('--rounds <n>', 'engine/HTTP rounds, alternating', '3')
  .option('--builtin', 'score against the 4,585 built-in tags (default: 20 custom tags)')
  .option('--upload', 'send the JPEG as a multipart upload (default: base64 in the JSON body)')
  .option('--image <file>', 'send this image file as it is instead of the 1 MP JPEG')
  .option('--only16', 'only the concurrency-16 phases')
  .parse()
  .opts<{ pack: string; seconds: string; rounds: string; builtin?: boolean; upload?: boolean; image?: string; only16?: boolean }>();
const seconds = Number(opts.seconds);
const rounds = Number(opts.rounds);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ADMIN = 'bench-platform-admin-key-000000';

const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitag-bench-'));
const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: 'warn', OMNITAG_DATA_DIR: dataDir, OMNITAG_PLATFORM_ADMIN_KEY: ADMIN, OMNITAG_MODEL_PACK: opts.pack, OMNITAG_MAX_QUEUE: '256', OMNITAG_DEFAULT_REQUESTS_PER_SECOND: '0', OMNITAG_DEFAULT_IMAGES_PER_MINUTE: '0' }); // the API's own cost, not the tenant's limits (bench/limits.bench.ts)
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
  const jpeg = opts.image ? await fs.readFile(opts.image) : await source.resize(1155, 866, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
  const meta = await sharp(jpeg).metadata();
  const imageLabel = `${meta.width}×${meta.height} ${meta.format} (${((meta.width! * meta.height!) / 1e6).toFixed(1)} MP, ${jpeg.length} bytes), ${opts.upload ? 'multipart upload' : 'base64'}`;
  const base64 = jpeg.toString('base64');
  const services = app.services;
  const snapshot = await services.vocab.labelBanks.forVocabulary(tenant, vocab);
  const engineOnce = async () => {
    await services.engine.scoreImages([jpeg], [snapshot.bank!], { fairnessKey: tenant });
  };
  const query = 'mutation($v: ID!, $i: String!) { tagImage(vocabularyId: $v, image: { base64: $i }) { revision tags { name score } } }';
  const httpOnce = () => call(query, { v: vocab, i: base64 }, key);

  async function concurrent(fn: () => Promise<unknown>, callers: number) {
    await Promise.all(Array.from({ length: callers }, fn)); // untimed, as the HTTP client's first round
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

  // The request body, written once: JSON with base64, or the multipart request spec's three parts.
  const bodyFile = path.join(dataDir, 'body');
  const boundary = 'omnitag-bench-boundary';
  const headers = [`authorization: Bearer ${key}`];
  if (opts.upload) {
    const part = (disposition: string, type: string | null, content: string | Buffer) =>
      Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; ${disposition}\r\n${type ? `Content-Type: ${type}\r\n` : ''}\r\n`), Buffer.from(content), Buffer.from('\r\n')]);
    const operations = { query: 'mutation($v: ID!, $i: ImageInput!) { tagImage(vocabularyId: $v, image: $i) { revision tags { name score } } }', variables: { v: vocab, i: { upload: null } } };
    await fs.writeFile(bodyFile, Buffer.concat([
      part('name="operations"', null, JSON.stringify(operations)),
      part('name="map"', null, JSON.stringify({ 0: ['variables.i.upload'] })),
      part('name="0"; filename="photo.jpg"', 'image/jpeg', jpeg),
      Buffer.from(`--${boundary}--\r\n`),
    ]));
    headers.push(`content-type: multipart/form-data; boundary=${boundary}`, 'apollo-require-preflight: true');
  } else {
    await fs.writeFile(bodyFile, JSON.stringify({ query, variables: { v: vocab, i: base64 } }));
    headers.push('content-type: application/json');
  }
  const client = async (connections: number) => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.resolve('bench/http-client.ts'), gqlUrl, bodyFile, String(seconds), String(connections), ...headers]);
    const r = JSON.parse(stdout) as { n: number; failed: number; meanMs: number; p50Ms: number; p99Ms: number; requestsPerSecond: number; firstFailure?: string };
    if (r.failed && opts.image) console.log(JSON.stringify({ failed: r.failed, of: r.n, firstFailure: r.firstFailure }));
    else if (r.failed) throw new Error(`${r.failed} of ${r.n} HTTP requests failed at concurrency ${connections}`);
    return r;
  };

  /**
   * Concurrency 1, as pairs: one engine call and one HTTP request (from the client process, on
   * the parent's signal), in random order, so drifts of the machine's speed hit both alike.
   * The overhead is the mean of the pairs' differences, with its 95 % confidence interval.
   */
  async function pairedAtConcurrency1() {
    const child = fork(path.resolve('bench/http-client.ts'), [gqlUrl, bodyFile, String(seconds), 'paired', ...headers], { execArgv: ['--import', 'tsx'] });
    const next = () => new Promise<unknown>((resolve) => child.once('message', resolve));
    await next();
    const httpTimed = async () => {
      const answer = next();
      child.send('go');
      const r = (await answer) as { ms: number; ok: boolean };
      if (!r.ok) throw new Error('an HTTP request failed at concurrency 1');
      return r.ms;
    };
    const engineTimed = async () => {
      const start = performance.now();
      await engineOnce();
      return performance.now() - start;
    };
    try {
      for (let i = 0; i < 5; i++) {
        await engineTimed();
        await httpTimed();
      } // warm-up
      const engine: number[] = [];
      const http: number[] = [];
      const end = performance.now() + seconds * 1000;
      while (performance.now() < end) {
        const engineFirst = Math.random() < 0.5;
        const first = await (engineFirst ? engineTimed() : httpTimed());
        const second = await (engineFirst ? httpTimed() : engineTimed());
        engine.push(engineFirst ? first : second);
        http.push(engineFirst ? second : first);
      }
      const diffs = http.map((h, i) => h - engine[i]!);
      const sd = Math.sqrt(diffs.reduce((a, d) => a + (d - mean(diffs)) ** 2, 0) / (diffs.length - 1));
      return { pairs: diffs.length, engineMs: mean(engine), httpMs: mean(http), overheadMs: mean(diffs), ci95Ms: (1.96 * sd) / Math.sqrt(diffs.length) };
    } finally {
      child.send('stop');
    }
  }

  for (let i = 0; i < 5; i++) await httpOnce(); // warm-up of the GraphQL path
  const perRound: { pairs: number; engineMs: number; httpMs: number; overheadMs: number; ci95Ms: number; engineImagesPerSecond: number; httpRequestsPerSecond: number; ratio: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const c1 = opts.only16 ? { pairs: 0, engineMs: NaN, httpMs: NaN, overheadMs: NaN, ci95Ms: NaN } : await pairedAtConcurrency1();
    console.log(JSON.stringify({ label: `round ${r + 1}: concurrency 1`, ...c1 }));
    const engine16 = await concurrent(engineOnce, 16);
    const http16 = (await client(16)).requestsPerSecond;
    console.log(JSON.stringify({ label: `round ${r + 1}: concurrency 16`, engineImagesPerSecond: +engine16.toFixed(2), httpRequestsPerSecond: +http16.toFixed(2) }));
    perRound.push({
      pairs: c1.pairs,
      engineMs: +c1.engineMs.toFixed(2),
      httpMs: +c1.httpMs.toFixed(2),
      overheadMs: +c1.overheadMs.toFixed(2),
      ci95Ms: +c1.ci95Ms.toFixed(2),
      engineImagesPerSecond: +engine16.toFixed(2),
      httpRequestsPerSecond: +http16.toFixed(2),
      ratio: +(http16 / engine16).toFixed(3),
    });
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const summary = {
    pack: opts.pack,
    vocabulary: opts.builtin ? '4,585 built-in tags' : '20 custom tags',
    image: imageLabel,
    seconds,
    rounds: perRound,
    medianOverheadAtConcurrency1Ms: +median(perRound.map((r) => r.overheadMs)).toFixed(2),
    medianThroughputRatioAt16: +median(perRound.map((r) => r.ratio)).toFixed(3),
    load: os.loadavg().map((l) => +l.toFixed(2)),
  };
  console.log(JSON.stringify(summary, null, 2));
} finally {
  await app.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
}
