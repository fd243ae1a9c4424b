import { describe, expect, it } from 'vitest';
import { Semaphore, WaitTimeoutError } from '../../src/core/concurrency.ts';
import { currentFairnessKey, runInFairnessScope, setFairnessKey } from '../../src/core/fairness.ts';

describe('Semaphore', () => {
  it('hands freed slots to keys in turn, first come first served within a key', async () => {
    const sem = new Semaphore(1);
    const order: string[] = [];
    // each waiter notes its turn, then frees the slot (twice: the second frees nothing more)
    const take = (key: string, name: string) =>
      sem.acquire({ key, timeoutMs: 1_000 }).then((release) => {
        order.push(name);
        setImmediate(() => {
          release();
          release();
        });
      });
    const holder = await sem.acquire({ key: 'a', timeoutMs: 1_000 });
    const waiters = [take('a', 'a1'), take('a', 'a2'), take('a', 'a3'), take('a', 'a4'), take('b', 'b1'), take('b', 'b2'), take('c', 'c1')];
    expect(sem.waiting).toBe(7);
    holder();
    await Promise.all(waiters);
    expect(order).toEqual(['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);
    expect(sem.waiting).toBe(0);
    (await sem.acquire({ key: 'd', timeoutMs: 10 }))(); // exactly one slot again
    await expect(Promise.all([sem.acquire({ key: 'd', timeoutMs: 10 }), sem.acquire({ key: 'e', timeoutMs: 10 })])).rejects.toBeInstanceOf(WaitTimeoutError);
  });

  it('bounds every wait, and a waiter that gave up takes nothing', async () => {
    const sem = new Semaphore(1);
    const holder = await sem.acquire({ key: 'a', timeoutMs: 1_000 });
    const late = await sem.acquire({ key: 'b', timeoutMs: 30 }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(WaitTimeoutError);
    expect(sem.waiting).toBe(0);
    holder();
    const next = await sem.acquire({ key: 'b', timeoutMs: 30 });
    next();
  });

  it('lets a waiter whose signal aborts leave the queue of its key; the next key is served', async () => {
    const sem = new Semaphore(1);
    const holder = await sem.acquire({ key: 'a' });
    const ac = new AbortController();
    const gone = sem.acquire({ key: 'b', signal: ac.signal }).catch((e: unknown) => e);
    const served = sem.acquire({ key: 'c' });
    expect(sem.waiting).toBe(2);
    ac.abort(new Error('client left'));
    expect(((await gone) as Error).message).toBe('client left');
    expect(sem.waiting).toBe(1);
    holder();
    (await served)();
    // an already aborted signal takes nothing, even with slots free
    const aborted = AbortSignal.abort(new Error('too late'));
    await expect(sem.acquire({ signal: aborted })).rejects.toThrow('too late');
    (await sem.acquire())();
  });
});

describe('fairness scopes', () => {
  it('name whom the work is for across awaits, and only inside the scope', async () => {
    expect(currentFairnessKey()).toBeUndefined();
    setFairnessKey('ignored outside a scope');
    expect(currentFairnessKey()).toBeUndefined();
    const seen = await Promise.all(
      ['t1', 't2'].map((key) =>
        runInFairnessScope(async () => {
          expect(currentFairnessKey()).toBeUndefined();
          await new Promise((r) => setTimeout(r, 5));
          setFairnessKey(key);
          await new Promise((r) => setImmediate(r));
          return currentFairnessKey();
        }),
      ),
    );
    expect(seen).toEqual(['t1', 't2']);
  });
});
