import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Counters } from '../../src/limits/index.ts';
import { freePort } from '../support/nginx.ts';

const window = { name: 'test', durationS: 60 };

describe('rate counters', () => {
  it('count in this process’s memory while PostgreSQL does not answer, rather than refuse everyone', async () => {
    // a port where nothing listens: every query fails at once
    const pool = new pg.Pool({ connectionString: `postgresql://postgres@127.0.0.1:${await freePort()}/none`, connectionTimeoutMillis: 500 });
    const counters = new Counters({ kind: 'postgresql', pool });
    try {
      const taken = [];
      for (let i = 0; i < 4; i++) taken.push(await counters.take(window, 3, 'tenant-a', 1));
      expect(taken.map((t) => t.ok)).toEqual([true, true, true, false]);
      expect((taken[3] as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
      // another key has its own count
      expect((await counters.take(window, 3, 'tenant-b', 2)).ok).toBe(true);
    } finally {
      await counters.stop();
    }
  });

  it('give a refused batch back, so what was refused is not counted as used', async () => {
    const counters = new Counters({ kind: 'memory' });
    expect((await counters.take(window, 5, 'k', 4)).ok).toBe(true);
    expect((await counters.take(window, 5, 'k', 2)).ok).toBe(false);
    expect((await counters.take(window, 5, 'k', 1)).ok).toBe(true);
    expect((await counters.take(window, 5, 'k', 1)).ok).toBe(false);
  });
});
