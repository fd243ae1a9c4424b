import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');

describe('configuration', () => {
  it('has working defaults with an empty environment', () => {
    const c = loadConfig({}, '/srv/omnitag');
    expect(c.database.url).toBeUndefined();
    expect(c.dataDir).toBe('/srv/omnitag/.data');
    expect(c.http).toMatchObject({ host: '127.0.0.1', port: 4000 });
    expect(c.model.executionProvider).toBe('cpu');
    expect(c.model.packDir).toBe('/srv/omnitag/packs/tiny');
    expect(c.llm.baseUrl).toBeUndefined();
    expect(c.database.timeouts).toEqual({ connectMs: 5_000, statementMs: 5_000, idleInTransactionMs: 10_000 });
    expect(Object.isFrozen(c.limits)).toBe(true);
  });

  it('bounds every database wait, and refuses a bound of nothing', () => {
    const c = loadConfig({ DATABASE_CONNECT_TIMEOUT_MS: '2000', DATABASE_STATEMENT_TIMEOUT_MS: '30000', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '60000' });
    expect(c.database.timeouts).toEqual({ connectMs: 2_000, statementMs: 30_000, idleInTransactionMs: 60_000 });
    let error: unknown;
    try {
      loadConfig({ DATABASE_CONNECT_TIMEOUT_MS: '0', DATABASE_STATEMENT_TIMEOUT_MS: 'forever', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '-5' });
    } catch (e) {
      error = e;
    }
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['DATABASE_CONNECT_TIMEOUT_MS', 'DATABASE_STATEMENT_TIMEOUT_MS', 'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS']) expect(problems).toContain(name);
  });

  it('parses and converts values', () => {
    const c = loadConfig({ PORT: '8080', OMNITAG_MIGRATE_ON_START: 'false', DATABASE_URL: 'postgres://u@h/db', OMNITAG_EXECUTION_PROVIDER: 'cuda' });
    expect(c.http.port).toBe(8080);
    expect(c.database.migrateOnStart).toBe(false);
    expect(c.database.url).toBe('postgres://u@h/db');
    expect(c.model.executionProvider).toBe('cuda');
  });

  it('reads the image library settings: float16 and 128-px WebP thumbnails by default, 0 px turns thumbnails off', () => {
    expect(loadConfig({}).library).toEqual({ encoding: 'float16', thumbnail: { maxEdge: 128, format: 'webp' }, scoreFloor: 0.05, searchBatch: 64 });
    const c = loadConfig({ OMNITAG_LIBRARY_ENCODING: 'float32', OMNITAG_LIBRARY_THUMBNAIL_PX: '0', OMNITAG_LIBRARY_SCORE_FLOOR: '0.2' });
    expect(c.library).toMatchObject({ encoding: 'float32', thumbnail: null, scoreFloor: 0.2 });
    expect(() => loadConfig({ OMNITAG_LIBRARY_ENCODING: 'int8', OMNITAG_LIBRARY_SCORE_FLOOR: '2' })).toThrow(/OMNITAG_LIBRARY_ENCODING[\s\S]*OMNITAG_LIBRARY_SCORE_FLOOR|OMNITAG_LIBRARY_SCORE_FLOOR[\s\S]*OMNITAG_LIBRARY_ENCODING/);
  });

  it('reads the library jobs\' settings: sizes as bytes, 0 pending bytes meaning no limit', () => {
    expect(loadConfig({}).libraryJobs).toEqual({ enabled: true, concurrency: 2, maxImagesPerJob: 10_000, maxJobBytes: 512 * 2 ** 20, maxPendingBytes: 2 * 2 ** 30, retagBatch: 256 });
    const c = loadConfig({ OMNITAG_LIBRARY_WORKER: 'false', OMNITAG_IMPORT_MAX_JOB_BYTES: '1000', OMNITAG_IMPORT_MAX_PENDING_BYTES: '0', OMNITAG_RETAG_BATCH: '16' });
    expect(c.libraryJobs).toMatchObject({ enabled: false, maxJobBytes: 1000, maxPendingBytes: 0, retagBatch: 16 });
    expect(() => loadConfig({ OMNITAG_IMPORT_MAX_JOB_BYTES: '0', OMNITAG_RETAG_BATCH: '0' })).toThrow(/OMNITAG_IMPORT_MAX_JOB_BYTES[\s\S]*OMNITAG_RETAG_BATCH|OMNITAG_RETAG_BATCH[\s\S]*OMNITAG_IMPORT_MAX_JOB_BYTES/);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).database.url).toBeUndefined();
  });

  it('reports every bad variable at once', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', OMNITAG_EXECUTION_PROVIDER: 'tpu', OMNITAG_PLATFORM_ADMIN_KEY: 'short' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['PORT', 'DATABASE_URL', 'OMNITAG_EXECUTION_PROVIDER', 'OMNITAG_PLATFORM_ADMIN_KEY']) {
      expect(problems).toContain(name);
    }
  });

  it('makes the server exit non-zero before listening, naming each bad variable', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, PORT: '-1', LOG_LEVEL: 'loud' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('PORT');
    expect(r.stderr).toContain('LOG_LEVEL');
    expect(r.stdout).not.toContain('ready at');
  });
});
