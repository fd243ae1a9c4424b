import { describe, expect, it } from 'vitest';
import { FairSemaphore, WaitTimeoutError } from '../../src/core/concurrency.ts';
import { currentFairnessKey, runInFairnessScope, setFairnessKey } from '../../src/core/fairness.ts';

describe('FairSemaphore', () => {
  it('hands freed slots to keys in turn, first come first served within a key', async () => {
    const sem = new FairSemaphore(1);
    const order: string[] = [];
    // each waiter notes its turn, then frees the slot (twice: the second frees nothing more)
    const take = (key: string, name: string) =>
      sem.acquire(key, 1_000).then((release) => {
        order.push(name);
        setImmediate(() => {
          release();
          release();
        });
      });
    const holder = await sem.acquire('a', 1_000);
    const waiters = [take('a', 'a1'), take('a', 'a2'), take('a', 'a3'), take('a', 'a4'), take('b', 'b1'), take('b', 'b2'), take('c', 'c1')];
    expect(sem.waiting).toBe(7);
    holder();
    await Promise.all(waiters);
    expect(order).toEqual(['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);
    expect(sem.waiting).toBe(0);
    (await sem.acquire('d', 10))(); // exactly one slot again
    await expect(Promise.all([sem.acquire('d', 10), sem.acquire('e', 10)])).rejects.toBeInstanceOf(WaitTimeoutError);
  });

  it('bounds every wait, and a waiter that gave up takes nothing', async () => {
    const sem = new FairSemaphore(1);
    const holder = await sem.acquire('a', 1_000);
    const late = await sem.acquire('b', 30).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(WaitTimeoutError);
    expect(sem.waiting).toBe(0);
    holder();
    const next = await sem.acquire('b', 30);
    next();
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
