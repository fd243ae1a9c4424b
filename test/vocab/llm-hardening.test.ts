import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker, CircuitOpenError } from '../../src/core/concurrency.ts';
import { cleanAnswers, MAX_ANSWER_CHARS } from '../../src/vocab/generation/clean.ts';
import { LlmDescriptionGenerator, type LlmGeneratorOptions } from '../../src/vocab/generation/llm.ts';
import type { VocabularyServices } from '../../src/vocab/index.ts';
import type { FakeLlmServer } from '../support/fake-llm-server.ts';
import { baseConfig, databaseMode, descriptionsOf, eventually, silentLog, tagById, useVocabEnvWithLlm, type ConfigOverrides, type VocabTestEnv } from './helpers.ts';

/**
 * What an LLM endpoint may send that must never reach the database or the endpoint again at
 * full speed: markup in answers, answers without choices, failures of every kind, and jobs
 * that only some replicas can run.
 */

const shared = useVocabEnvWithLlm();
let env: VocabTestEnv;
let server: FakeLlmServer;
beforeAll(() => ({ env, server } = shared));

/** Markup of every kind an answer can carry, and what each must become. */
const HOSTILE: [string, string | 'markup' | 'empty'][] = [
  ['<p>A <b>red</b> fox with a <i>bushy</i> tail.</p>', 'A red fox with a bushy tail.'],
  ['<script>alert("x")</script>A fox in the snow.', 'A fox in the snow.'],
  ['<SCRIPT type="text/javascript">document.cookie</SCRIPT >A fox at dawn.', 'A fox at dawn.'],
  ['<img src=x onerror="alert(1)">An orange fox running.', 'An orange fox running.'],
  ['<a href="javascript:alert(1)">A fox</a> at dusk.', 'A fox at dusk.'],
  ['&lt;script&gt;alert(1)&lt;/script&gt;A fox &amp; its cubs.', 'A fox & its cubs.'],
  ['&#60;img src=x onerror=alert(1)&#62;A fox on a log.', 'A fox on a log.'],
  ['&amp;lt;img src=x onerror=alert(1)&amp;gt;A sleeping fox.', 'A sleeping fox.'],
  ['A fox<style>body { color: red }</style> by a den<!-- a hidden note -->.', 'A fox by a den.'],
  ['A fox in tall grass <img src=x onerror=alert(1)', 'A fox in tall grass'],
  ['<![CDATA[<script>x</script>]]>A fox with amber eyes.', 'A fox with amber eyes.'],
  ['A fox\u202e\u0007 in the reeds.', 'A fox in the reeds.'],
  ['Tom &amp; Jerry style fox, &quot;cartoonish&quot;.', 'Tom & Jerry style fox, "cartoonish".'],
  ['<script>never closed, so nothing after it is text', 'empty'],
  ['<style>p { display: none }</style>', 'empty'],
  ['&amp;amp;amp;lt;script&amp;amp;amp;gt;alert(1) and a fox', 'markup'],
  ['<<script>script>alert(1)<</script>/script>A fox.', 'markup'],
  ['A fox <3 and two cubs.', 'A fox <3 and two cubs.'],
];

function generator(options: Partial<LlmGeneratorOptions> = {}) {
  return new LlmDescriptionGenerator({
    ...baseConfig.llm,
    baseUrl: server.url,
    contextTokens: 77,
    model: 'fake-model',
    concurrency: 4,
    timeoutMs: 5_000,
    maxRetries: 2,
    retryBaseMs: 5,
    log: silentLog,
    ...options,
  });
}

const withLlm = (extra: { llm?: ConfigOverrides['llm']; worker?: NonNullable<ConfigOverrides['vocab']>['worker'] } = {}): ConfigOverrides => ({
  llm: { baseUrl: server.url, maxRetries: 0, ...extra.llm },
  vocab: { descriptionsPerTag: 6, worker: extra.worker },
});

const itemsOf = (jobId: string) => env.db.prisma.descriptionJobItem.findMany({ where: { jobId }, orderBy: { id: 'asc' } });

async function jobDone(s: VocabularyServices, tenantId: string, jobId: string) {
  return eventually(async () => {
    const j = await s.jobs.get(tenantId, jobId);
    return j.state === 'QUEUED' || j.state === 'RUNNING' ? undefined : j;
  }, `job ${jobId} to finish`);
}

/** Resolves once the worker has looked for work `more` more times. */
const pollsLater = async (s: VocabularyServices, more: number) => {
  const target = s.worker.stats().polls + more;
  await eventually(async () => (s.worker.stats().polls >= target ? true : undefined), `${more} more polls`);
};

describe('markup in LLM answers', () => {
  it('is removed (script and style content, tags, comments, references decoded and cleaned again) or the answer refused', async () => {
    const cleaned = await cleanAnswers(HOSTILE.map(([raw]) => raw), { maxTokens: 77 });
    const got = cleaned.map((c) => (c.ok ? c.text : c.reason));
    expect(got).toEqual(HOSTILE.map(([, want]) => want));
    for (const c of cleaned) if (c.ok) expect(c.text).not.toMatch(/<\s*\/?\s*[a-z!?]|&[#a-z][a-z\d]*;|script|onerror|alert/i);
  });

  it('reads at most MAX_ANSWER_CHARS of an answer', async () => {
    const [c] = await cleanAnswers(['A fox. ' + 'x'.repeat(50_000) + '<script>alert(1)</script>'], { maxTokens: 77 });
    expect(c?.ok && c.text.length).toBe(MAX_ANSWER_CHARS);
  });

  it(`never reaches the stored descriptions (${databaseMode} database)`, async () => {
    const texts = HOSTILE.map(([raw]) => raw);
    server.behave = (r) => ({ kind: 'answer', contents: Array.from({ length: 10 }, (_, i) => texts[(r.index * 3 + i) % texts.length]!) });
    const s = await env.services(withLlm({ llm: { maxRetries: 2 } }));
    const v = await s.vocabularies.create(env.tenantA, { name: 'hostile answers' });
    const { results } = await s.tags.add(env.tenantA, v.id, [{ name: 'fox' }]);
    const { job } = await s.jobs.create(env.tenantA, v.id);
    s.start();
    expect(await jobDone(s, env.tenantA, job.id)).toMatchObject({ state: 'SUCCEEDED' });
    const stored = await descriptionsOf(s, env.tenantA, results[0]!.tag!.id);
    expect(stored.filter((d) => d.source === 'LLM').length).toBeGreaterThan(0);
    for (const d of stored) {
      expect(d.text).not.toMatch(/<\s*\/?\s*[a-z!?]|&[#a-z][a-z\d]*;|script|onerror|alert/i);
      expect(d.text).not.toMatch(/[\p{Cc}\u202e]/u);
    }
  });

  it('fails a tag whose every answer is markup, naming why', async () => {
    server.behave = () => ({ kind: 'answer', contents: Array.from({ length: 10 }, () => '<<script>script>alert(1)<</script>/script>') });
    await expect(generator().generate('fox', 6)).rejects.toThrow(/no usable description.*10 with markup/);
  });
});

describe('every failure path backs off', () => {
  it('retries an answer without choices after a pause, as a failure, and never switches to single calls for it', async () => {
    server.behave = () => ({ kind: 'no-choices' });
    const g = generator({ maxRetries: 2, breakerThreshold: 1_000 });
    await expect(g.generate('kite', 11)).rejects.toMatchObject({ code: 'LLM_UNAVAILABLE', details: { retryable: true }, message: expect.stringMatching(/no choices/) });
    // five prompts, each asked once with n and retried twice: not a call per missing answer
    expect(server.requests).toHaveLength(15);
    expect(server.requests.every((r) => r.n === 2)).toBe(true);
    expect(g.stats()).toMatchObject({ nMode: 'unknown', retries: 10, failures: 5 });
  });

  it('opens the breaker on answers without choices and on rejected requests', async () => {
    for (const behaviour of [{ kind: 'no-choices' as const }, { kind: 'error' as const, status: 401, message: 'Incorrect API key provided' }]) {
      server.behave = () => behaviour;
      server.requests.length = 0;
      const g = generator({ maxRetries: 0, breakerThreshold: 3, breakerCooldownMs: 60_000, concurrency: 1 });
      for (let i = 0; i < 3; i++) await expect(g.generate(`tag ${i}`, 2)).rejects.toMatchObject({ code: 'LLM_UNAVAILABLE' });
      expect(g.stats().breaker).toBe('open');
      expect(server.requests).toHaveLength(3);
      await expect(g.generate('more', 2)).rejects.toMatchObject({ code: 'LLM_UNAVAILABLE', details: { retryable: true }, message: expect.stringMatching(/circuit breaker/) });
      expect(server.requests).toHaveLength(3);
    }
  });

  it('waits at least the back-off between retries even when the server says Retry-After: 0', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    server.behave = () => ({ kind: 'error', status: 429, headers: { 'retry-after': '0' } });
    const g = generator({ maxRetries: 3, retryBaseMs: 20, concurrency: 1, log });
    await expect(g.generate('owl', 2)).rejects.toMatchObject({ code: 'LLM_RATE_LIMITED', details: { retryAfterMs: 0 } });
    const delays = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'retrying LLM request').map((l) => l.delay as number);
    expect(delays).toHaveLength(3);
    delays.forEach((d, attempt) => expect(d).toBeGreaterThanOrEqual(20 * 2 ** attempt * 0.75));
  });

  it('lets the next trial through when an open breaker’s trial ends without a verdict', () => {
    let now = 0;
    const b = new CircuitBreaker(1, 1_000, () => now);
    b.failure();
    expect(() => b.check()).toThrow(CircuitOpenError);
    now = 1_000;
    b.check(); // the trial
    expect(() => b.check()).toThrow(CircuitOpenError); // one at a time
    b.abandon(); // cancelled, or told to wait
    b.check(); // another trial, not a breaker stuck half-open
    b.success();
    expect(b.state).toBe('closed');
  });

  it(`puts items back with a delay after answers without choices, and asks no more meanwhile (${databaseMode} database)`, async () => {
    server.behave = () => ({ kind: 'no-choices' });
    const s = await env.services(withLlm({ llm: { maxRetries: 1 }, worker: { retryBaseMs: 60_000, concurrency: 2 } }));
    const v = await s.vocabularies.create(env.tenantA, { name: 'no choices' });
    await s.tags.add(env.tenantA, v.id, [{ name: 'lantern' }, { name: 'lamp' }]);
    const { job } = await s.jobs.create(env.tenantA, v.id);
    s.start();
    const items = await eventually(async () => {
      const rows = await itemsOf(job.id);
      return rows.every((i) => i.state === 'PENDING' && i.attempts === 1 && i.error) ? rows : undefined;
    }, 'both items to be put back');
    for (const i of items) {
      expect(i.error).toMatch(/^LLM_UNAVAILABLE: /);
      expect(i.runAfter.getTime() - i.updatedAt.getTime()).toBeGreaterThanOrEqual(60_000);
    }
    // five prompts × (one try + one retry) per item at most, then nothing while they wait
    const asked = server.requests.length;
    expect(asked).toBeLessThanOrEqual(20);
    await pollsLater(s, 5);
    expect(server.requests.length).toBe(asked);
    expect((await itemsOf(job.id)).map((i) => i.attempts)).toEqual([1, 1]);
  });
});

describe(`LLM item errors name their code (${databaseMode} database)`, () => {
  it('LLM_RATE_LIMITED: the item waits at least as long as the server asked', async () => {
    server.behave = () => ({ kind: 'error', status: 429, headers: { 'retry-after': '3600' } });
    const s = await env.services(withLlm({ worker: { retryMaxMs: 7_200_000 } }));
    const v = await s.vocabularies.create(env.tenantB, { name: 'rate limited' });
    await s.tags.add(env.tenantB, v.id, [{ name: 'heron' }]);
    const { job } = await s.jobs.create(env.tenantB, v.id);
    s.start();
    const [item] = await eventually(async () => {
      const rows = await itemsOf(job.id);
      return rows[0]?.error ? rows : undefined;
    }, 'the item to be put back');
    expect(item).toMatchObject({ state: 'PENDING', attempts: 1, error: expect.stringMatching(/^LLM_RATE_LIMITED: /) });
    expect(item!.runAfter.getTime() - item!.updatedAt.getTime()).toBeGreaterThanOrEqual(3_600_000);
    const listed = await s.jobs.items(env.tenantB, job.id, { first: 10 });
    expect(listed.nodes[0]!.error).toMatch(/^LLM_RATE_LIMITED: /);
  });

  it('LLM_UNAVAILABLE: on the failed item and its tag', async () => {
    server.behave = () => ({ kind: 'error', status: 503, message: 'upstream down' });
    const s = await env.services(withLlm({ worker: { maxAttempts: 1 } }));
    const v = await s.vocabularies.create(env.tenantB, { name: 'unavailable' });
    const { results } = await s.tags.add(env.tenantB, v.id, [{ name: 'egret' }]);
    const { job } = await s.jobs.create(env.tenantB, v.id);
    s.start();
    expect(await jobDone(s, env.tenantB, job.id)).toMatchObject({ state: 'FAILED', failed: 1 });
    const listed = await s.jobs.items(env.tenantB, job.id, { first: 10 });
    expect(listed.nodes[0]).toMatchObject({ state: 'FAILED', error: expect.stringMatching(/^LLM_UNAVAILABLE: the LLM endpoint is unavailable: HTTP 503/) });
    const tag = await tagById(s, env.tenantB, results[0]!.tag!.id);
    expect(tag).toMatchObject({ status: 'FAILED', statusReason: expect.stringMatching(/^LLM_UNAVAILABLE: /) });
  });
});

describe(`replicas claim only work they can do (${databaseMode} database)`, () => {
  it('leaves an LLM job to replicas with its model, and runs template jobs anywhere', async () => {
    const withModel = await env.services(withLlm());
    const v = await withModel.vocabularies.create(env.tenantA, { name: 'needs an llm' });
    const { results } = await withModel.tags.add(env.tenantA, v.id, [{ name: 'zither' }, { name: 'lute' }]);
    const { job } = await withModel.jobs.create(env.tenantA, v.id);
    expect(job.generator).toBe('llm:fake-model');

    // a replica without an LLM, and one with another model, work on: neither touches that job
    const without = await env.services({ vocab: { descriptionsPerTag: 6 } }, env.openClient());
    const otherModel = await env.services(withLlm({ llm: { model: 'other-model' } }), env.openClient());
    without.start();
    otherModel.start();
    const plain = await without.vocabularies.create(env.tenantA, { name: 'templates' });
    await without.tags.add(env.tenantA, plain.id, [{ name: 'oboe' }]);
    const { job: templateJob } = await without.jobs.create(env.tenantA, plain.id);
    expect(templateJob.generator).toBe('template');
    expect(await jobDone(without, env.tenantA, templateJob.id)).toMatchObject({ state: 'SUCCEEDED', succeeded: 1 });
    await pollsLater(without, 5);
    await pollsLater(otherModel, 5);
    expect((await itemsOf(job.id)).map((i) => [i.state, i.attempts, i.error])).toEqual([
      ['PENDING', 0, null],
      ['PENDING', 0, null],
    ]);
    expect(without.worker.stats()).toMatchObject({ failed: 0, handedBack: 0 });
    expect(otherModel.worker.stats()).toMatchObject({ failed: 0, handedBack: 0 });
    expect(server.requests.filter((r) => r.model === 'other-model')).toHaveLength(0);
    for (const r of results) expect((await tagById(without, env.tenantA, r.tag!.id))!.status).toBe('PENDING');

    withModel.start();
    expect(await jobDone(withModel, env.tenantA, job.id)).toMatchObject({ state: 'SUCCEEDED', succeeded: 2, failed: 0 });
    expect((await itemsOf(job.id)).map((i) => [i.state, i.attempts])).toEqual([
      ['READY', 1],
      ['READY', 1],
    ]);
  });
});
