import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const problems = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe('limits, metrics and replica settings', () => {
  it('keeps counters in memory unless shared ones are asked for: Redis when named, or PostgreSQL', () => {
    expect(loadConfig({}).tenantLimits.store).toBe('memory');
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/x' }).tenantLimits.store).toBe('memory');
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/x', OMNITAG_LIMITS_STORE: 'postgresql' }).tenantLimits.store).toBe('postgresql');
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/x', OMNITAG_REDIS_URL: 'redis://cache:6379' }).tenantLimits.store).toBe('redis');
    expect(loadConfig({ OMNITAG_REDIS_URL: 'redis://cache:6379', OMNITAG_LIMITS_STORE: 'memory' }).tenantLimits.store).toBe('memory');
  });

  it('names every impossible combination and bad value', () => {
    expect(problems({ OMNITAG_LIMITS_STORE: 'redis' })).toEqual(['OMNITAG_LIMITS_STORE: redis needs OMNITAG_REDIS_URL']);
    expect(problems({ OMNITAG_LIMITS_STORE: 'postgresql' })).toEqual(['OMNITAG_LIMITS_STORE: postgresql needs DATABASE_URL']);
    const bad = problems({ OMNITAG_REDIS_URL: 'http://cache', OMNITAG_DEFAULT_IMAGES_PER_DAY: '-1', OMNITAG_METRICS_TOKEN: 'short', OMNITAG_JOB_LEASE_MS: '10' });
    expect(bad.map((p) => p.split(':')[0]).sort()).toEqual(['OMNITAG_DEFAULT_IMAGES_PER_DAY', 'OMNITAG_JOB_LEASE_MS', 'OMNITAG_METRICS_TOKEN', 'OMNITAG_REDIS_URL']);
  });

  it('reads the defaults of every tenant limit, 0 for none', () => {
    const c = loadConfig({ OMNITAG_DEFAULT_REQUESTS_PER_SECOND: '0', OMNITAG_DEFAULT_MAX_TAGS: '10', OMNITAG_JOB_LEASE_MS: '3000' });
    expect(c.tenantLimits.defaults).toEqual({ requestsPerSecond: 0, imagesPerMinute: 1_200, imagesPerDay: 200_000, maxVocabularies: 100, maxTags: 10, llmGenerationsPerDay: 10_000, maxStoredImages: 100_000 });
    expect(c.vocab.worker).toMatchObject({ leaseMs: 3000, renewEveryMs: 1000 });
    expect(c.metrics).toEqual({ port: undefined, token: undefined });
  });
});
