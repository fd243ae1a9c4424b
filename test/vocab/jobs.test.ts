import { beforeAll, describe, expect, it } from 'vitest';
import type { VocabularyServices } from '../../src/vocab/index.ts';
import type { FakeLlmServer } from '../support/fake-llm-server.ts';
import { descriptionsOf as listDescriptions, eventually, tagById, tagNamed, useVocabEnvWithLlm, type ConfigOverrides, type VocabTestEnv } from './helpers.ts';

const shared = useVocabEnvWithLlm();
let env: VocabTestEnv;
let server: FakeLlmServer;
beforeAll(() => ({ env, server } = shared));

const withLlm = (extra: { llm?: ConfigOverrides['llm']; worker?: NonNullable<ConfigOverrides['vocab']>['worker'] } = {}): ConfigOverrides => ({
  llm: { baseUrl: server.url, maxRetries: 0, ...extra.llm },
  vocab: { descriptionsPerTag: 6, worker: extra.worker },
});

async function jobDone(s: VocabularyServices, tenantId: string, jobId: string) {
  return eventually(async () => {
    const j = await s.jobs.get(tenantId, jobId);
    return j.state === 'QUEUED' || j.state === 'RUNNING' ? undefined : j;
  }, `job ${jobId} to finish`);
}

async function descriptionsOf(s: VocabularyServices, tenantId: string, tagId: string) {
  return (await listDescriptions(s, tenantId, tagId)).map((d) => [d.source, d.text] as const);
}

describe('description jobs', () => {
  it('regenerates with templates when no LLM is configured', async () => {
    const s = await env.services({ vocab: { descriptionsPerTag: 8 } });
    s.start();
    const v = await s.vocabularies.create(env.tenantA, { name: 'templates only' });
    const { results } = await s.tags.add(env.tenantA, v.id, [{ name: 'anvil' }, { name: 'bellows', descriptions: ['a hand-written one.'] }]);
    await expect(s.jobs.create(env.tenantA, v.id, { generator: 'llm' })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    const { job } = await s.jobs.create(env.tenantA, v.id, { count: 3 });
    expect(job).toMatchObject({ generator: 'template', total: 2, state: 'QUEUED', descriptionsPerTag: 3 });
    const done = await jobDone(s, env.tenantA, job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', succeeded: 2, failed: 0, progress: 1 });
    expect(await descriptionsOf(s, env.tenantA, results[0]!.tag!.id)).toEqual([
      ['TEMPLATE', 'a photo of a anvil.'],
      ['TEMPLATE', 'a bad photo of a anvil.'],
      ['TEMPLATE', 'a photo of many anvil.'],
    ]);
    // hand-written descriptions stay; generated ones are added beside them
    expect((await descriptionsOf(s, env.tenantA, results[1]!.tag!.id)).map((d) => d[0]).sort()).toEqual(['MANUAL', 'TEMPLATE', 'TEMPLATE', 'TEMPLATE']);
    await s.stop();
  });

  it('generates with the LLM in the background; tags are scored with templates until theirs are ready', async () => {
    const s = await env.services(withLlm());
    const v = await s.vocabularies.create(env.tenantA, { name: 'llm' });
    const { results } = await s.tags.add(env.tenantA, v.id, [{ name: 'gondola' }, { name: 'trebuchet' }]);
    const { job, alreadyQueued } = await s.jobs.create(env.tenantA, v.id);
    expect(job).toMatchObject({ generator: 'llm:fake-model', total: 2, state: 'QUEUED', progress: 0 });
    expect(alreadyQueued).toEqual([]);
    // asking again while it waits adds nothing
    const again = await s.jobs.create(env.tenantA, v.id, { tagIds: [results[0]!.tag!.id] });
    expect(again.job).toMatchObject({ total: 0, state: 'SUCCEEDED' });
    expect(again.alreadyQueued).toEqual([results[0]!.tag!.id]);

    const pending = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect([...pending.tags].map((t) => [t.status, t.descriptionSource, t.usedFallback])).toEqual([
      ['PENDING', 'TEMPLATE', true],
      ['PENDING', 'TEMPLATE', true],
    ]);
    expect(pending.bank!.segments.map((x) => x.maxDescriptions)).toEqual([6]);

    s.start();
    const done = await jobDone(s, env.tenantA, job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', succeeded: 2, failed: 0, progress: 1 });
    const ready = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect(ready.revision).toBeGreaterThan(pending.revision);
    expect([...ready.tags].map((t) => [t.status, t.descriptionSource, t.usedFallback])).toEqual([
      ['READY', 'LLM', false],
      ['READY', 'LLM', false],
    ]);
    const d = await listDescriptions(s, env.tenantA, results[0]!.tag!.id);
    expect(d.map((x) => x.source)).toEqual(['TEMPLATE', 'LLM', 'LLM', 'LLM', 'LLM', 'LLM']);
    expect(d[0]!.text).toBe('a photo of a gondola.');
    expect(d[1]).toMatchObject({ generatorModel: 'fake-model', generatorPrompt: expect.stringContaining('"gondola"') });
    const items = await s.jobs.items(env.tenantA, job.id, { first: 10 });
    expect(items.nodes.map((i) => [i.tagName, i.state, i.attempts])).toEqual([
      ['gondola', 'READY', 1],
      ['trebuchet', 'READY', 1],
    ]);
    // the other tenant sees none of it
    await expect(s.jobs.get(env.tenantB, job.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(s.jobs.items(env.tenantB, job.id, { first: 10 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(s.jobs.create(env.tenantB, v.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(s.jobs.cancel(env.tenantB, job.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await s.stop();
  });

  it('retries items after LLM outages and fails tags whose answers are all refused, keeping their templates', async () => {
    let flaky = 0;
    server.behave = (r) => {
      if (r.tag === 'flaky tag' && flaky++ < 2) return { kind: 'error', status: 500 };
      if (r.tag === 'forbidden tag') return { kind: 'refuse' };
      return undefined;
    };
    const s = await env.services(withLlm());
    const v = await s.vocabularies.create(env.tenantA, { name: 'failures' });
    const { results } = await s.tags.add(env.tenantA, v.id, [{ name: 'flaky tag' }, { name: 'forbidden tag' }, { name: 'fine tag' }]);
    const { job } = await s.jobs.create(env.tenantA, v.id);
    s.start();
    const done = await jobDone(s, env.tenantA, job.id);
    expect(done).toMatchObject({ state: 'FAILED', succeeded: 2, failed: 1, error: '1 of 3 tags failed' });
    const items = await s.jobs.items(env.tenantA, job.id, { first: 10 });
    const byName = Object.fromEntries(items.nodes.map((i) => [i.tagName, i]));
    expect(byName['flaky tag']).toMatchObject({ state: 'READY' });
    expect(byName['flaky tag']!.attempts).toBeGreaterThan(1);
    expect(byName['forbidden tag']).toMatchObject({ state: 'FAILED', attempts: 1, error: expect.stringMatching(/no usable description.*refused/) });
    const forbidden = (await tagById(s, env.tenantA, results[1]!.tag!.id))!;
    expect(forbidden).toMatchObject({ status: 'FAILED', statusReason: expect.stringMatching(/refused/) });
    const snap = await s.labelBanks.forVocabulary(env.tenantA, v.id);
    expect([...snap.tags].find((t) => t.name === 'forbidden tag')).toMatchObject({ status: 'FAILED', descriptionSource: 'TEMPLATE', usedFallback: true });
    expect((await listDescriptions(s, env.tenantA, forbidden.id)).every((d) => d.source === 'TEMPLATE')).toBe(true);
    await s.stop();
  });

  it('resumes after a worker stalls mid-job: another worker finishes it, nothing is written twice', async () => {
    // replica A renews its leases far too late, as a stalled or partitioned process would: its
    // held item's lease runs out while it waits for the LLM
    const replicaA = await env.services(withLlm({ llm: { timeoutMs: 120_000 }, worker: { leaseMs: 400, renewEveryMs: 600_000, concurrency: 1 } }));
    const v = await replicaA.vocabularies.create(env.tenantB, { name: 'crash' });
    const names = ['alpha', 'bravo', 'charlie', 'delta'];
    await replicaA.tags.add(env.tenantB, v.id, names.map((name) => ({ name })));
    const { job } = await replicaA.jobs.create(env.tenantB, v.id);
    const first = server.requests.length;
    server.holdFrom(first + 10); // two tags' answers (5 prompts each) go through, the third tag's are held
    replicaA.start();
    await eventually(async () => (server.heldCount > 0 ? true : undefined), 'the third tag to be asked');
    const mid = await replicaA.jobs.get(env.tenantB, job.id);
    expect(mid).toMatchObject({ state: 'RUNNING', succeeded: 2 });
    server.open();

    const replicaB = await env.services(withLlm({ worker: { leaseMs: 10_000, concurrency: 2 } }), env.openClient());
    replicaB.start();
    const done = await jobDone(replicaB, env.tenantB, job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', total: 4, succeeded: 4, failed: 0 });

    // the stalled worker gets its old answers: its claim token no longer counts
    server.release();
    await eventually(async () => (replicaA.worker.stats().lost === 1 ? true : undefined), 'the stale result to be refused');
    const after = await replicaB.jobs.get(env.tenantB, job.id);
    expect(after).toMatchObject({ succeeded: 4, failed: 0 });
    const items = await replicaB.jobs.items(env.tenantB, job.id, { first: 10 });
    expect(items.nodes.map((i) => i.attempts).sort()).toEqual([1, 1, 1, 2]);
    expect(items.nodes.every((i) => i.state === 'READY')).toBe(true);
    for (const name of names) {
      const tag = (await tagNamed(replicaB, env.tenantB, v.id, name))!;
      const d = await listDescriptions(replicaB, env.tenantB, tag.id);
      expect(d).toHaveLength(6);
      expect(new Set(d.map((x) => x.text)).size).toBe(6);
      expect(tag.status).toBe('READY');
    }
    await replicaB.stop();
    await replicaA.stop();
  });

  it('cancels a job: waiting tags go back to their descriptions, late results are discarded', async () => {
    const s = await env.services(withLlm());
    const v = await s.vocabularies.create(env.tenantA, { name: 'cancel' });
    const { results } = await s.tags.add(env.tenantA, v.id, [{ name: 'cog' }, { name: 'gear' }]);
    server.hold();
    const before = server.requests.length;
    const { job } = await s.jobs.create(env.tenantA, v.id);
    s.start();
    await server.waitForRequests(before + 4); // the LLM concurrency: 4 requests in flight
    const cancelled = await s.jobs.cancel(env.tenantA, job.id);
    expect(cancelled).toMatchObject({ state: 'CANCELLED', failed: 2 });
    server.open();
    server.release();
    await eventually(async () => (s.worker.stats().active === 0 ? true : undefined), 'the worker to drop its items');
    for (const r of results) {
      const tag = (await tagById(s, env.tenantA, r.tag!.id))!;
      expect(tag.status).toBe('READY');
      expect((await listDescriptions(s, env.tenantA, tag.id)).every((d) => d.source === 'TEMPLATE')).toBe(true);
    }
    expect((await s.jobs.get(env.tenantA, job.id)).state).toBe('CANCELLED');
    await s.stop();
  });

  it('hands claimed items back on a clean stop, and removing a tag takes it out of its job', async () => {
    const s = await env.services(withLlm({ worker: { concurrency: 1 } }));
    const v = await s.vocabularies.create(env.tenantA, { name: 'stop' });
    const { results } = await s.tags.add(env.tenantA, v.id, [{ name: 'sextant' }, { name: 'astrolabe' }]);
    server.hold();
    const before = server.requests.length;
    const { job } = await s.jobs.create(env.tenantA, v.id);
    s.start();
    await server.waitForRequests(before + 4); // the LLM concurrency: 4 requests in flight
    await s.stop();
    const items = await s.jobs.items(env.tenantA, job.id, { first: 10 });
    expect(items.nodes.map((i) => [i.state, i.attempts])).toEqual([
      ['PENDING', 0],
      ['PENDING', 0],
    ]);
    server.open();
    server.release();
    await s.tags.remove(env.tenantA, [results[0]!.tag!.id]);
    expect(await s.jobs.get(env.tenantA, job.id)).toMatchObject({ total: 1 });
    const next = await env.services(withLlm());
    next.start();
    expect(await jobDone(next, env.tenantA, job.id)).toMatchObject({ state: 'SUCCEEDED', total: 1, succeeded: 1 });
    await next.stop();
  });
});
