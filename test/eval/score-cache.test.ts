import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ScoreCache } from '../../src/eval/score-cache.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-score-cache-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('score cache', () => {
  it('keeps scores exactly across runs, drops a line cut short and refuses another key', async () => {
    const file = path.join(tmp, 'scores.jsonl');
    const a = Float32Array.of(0.1, 0.25, Math.fround(1 / 3));
    const cache = await ScoreCache.open(file, 'k1', 3);
    await cache.add('a', { scores: a });
    await cache.add('b', { error: { code: 'BAD_IMAGE', message: 'not an image' } });
    await cache.close();
    // a crash in the middle of a line
    appendFileSync(file, '{"image":"c","scores":"AAAA');

    const again = await ScoreCache.open(file, 'k1', 3);
    // failed images are scored again; the cut line is gone
    expect([...again.entries.keys()]).toEqual(['a']);
    expect(again.entries.get('a')!.scores).toEqual(a);
    await again.add('c', { scores: Float32Array.of(1, 0, 0.5) });
    await again.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).image ?? 'header')).toEqual(['header', 'a', 'b', 'c']);

    const kept = await ScoreCache.open(file, 'k1', 3, false);
    expect(kept.entries.get('b')).toEqual({ error: { code: 'BAD_IMAGE', message: 'not an image' } });
    await kept.close();
    await expect(ScoreCache.open(file, 'k2', 3)).rejects.toThrow(/scores of another model, vocabulary or tag list/);
  });
});
