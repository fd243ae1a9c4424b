import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { readVocabularyFile } from '../../src/cli/tag-vocabulary.ts';
import { hasShared, repoRoot, sharedDir, testPackDir } from './helpers.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, content: string) => {
  const file = path.join(tmp, name);
  writeFileSync(file, content);
  return file;
};

describe('vocabulary files', () => {
  it('reads the object, upstream list and name-list shapes', async () => {
    const object = await readVocabularyFile(write('o.json', JSON.stringify({ cat: ['a cat.', ' '], dog: 'a dog.' })));
    expect(object.names).toEqual(['cat', 'dog']);
    expect(object.descriptions).toEqual([['a cat.'], ['a dog.']]);
    const upstream = await readVocabularyFile(write('u.json', JSON.stringify([{ cat: ['a', 'b'] }, { dog: [] }])));
    expect(upstream.descriptions).toEqual([['a', 'b'], ['a photo of a dog.']]);
    const names = await readVocabularyFile(write('n.json', JSON.stringify(['tree'])));
    expect(names.descriptions).toEqual([['a photo of a tree.']]);
    expect(names.contentHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names the problem in a bad file', async () => {
    await expect(readVocabularyFile(write('bad1.json', '{'))).rejects.toThrow(/bad1\.json: not valid JSON/);
    await expect(readVocabularyFile(write('bad2.json', '[{"a": 1}]'))).rejects.toThrow(/descriptions of "a"/);
    await expect(readVocabularyFile(write('bad3.json', '[{"a": ["x"]}, {"a": ["y"]}]'))).rejects.toThrow(/appears twice/);
    await expect(readVocabularyFile(write('bad4.json', '[]'))).rejects.toThrow(/no tags/);
  });
});

const packDir = testPackDir();
const canRun = hasShared && packDir !== null;
if (!canRun) console.warn('CLI tests skipped: they need ../shared/data images and a test pack');

describe.skipIf(!canRun)('tag CLI', () => {
  const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');
  const cli = (...args: string[]) =>
    run(tsx, ['src/cli/tag.ts', ...args, '--pack', packDir!, '--threads', '1'], { cwd: repoRoot, maxBuffer: 64 << 20 }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  const images = path.join(sharedDir, 'data', 'images');

  it('tags a folder with an open-set vocabulary file, as JSON with logits and explanations', async () => {
    const vocab = write('vocab.json', JSON.stringify({ food: ['a photo of food.', 'a plate with a meal on it'], sky: ['a photo of the sky.'] }));
    const { code, stdout } = await cli(images, '--vocab', vocab, '--format', 'json', '--top', '2', '--logits', '--explain');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.vocabulary.tags).toBe(2);
    expect(out.images).toHaveLength(4);
    for (const image of out.images) {
      expect(image.tags).toHaveLength(2);
      const food = image.tags.find((t: { name: string }) => t.name === 'food');
      expect(food.threshold).toBe(0.5);
      expect(food.passed).toBe(food.probability > 0.5);
      expect(food.probability).toBeCloseTo(1 / (1 + Math.exp(-food.logit)), 3);
      expect(food.descriptions.map((d: { text: string }) => d.text).sort()).toEqual(['a photo of food.', 'a plate with a meal on it']);
    }
  });

  it('reports a file that is not an image and exits with 1, tagging the others', async () => {
    const notImage = write('notes.jpg', 'plain text');
    const { code, stdout } = await cli(path.join(images, 'demo4.jpg'), notImage, '--format', 'json', '--min-score', '0');
    expect(code).toBe(1);
    const out = JSON.parse(stdout);
    expect(out.vocabulary.source).toBe('builtin');
    expect(out.images[0].tags.length).toBe(out.vocabulary.tags); // --min-score 0 lists every tag
    expect(out.images[1].error.code).toBe('BAD_IMAGE');
  });

  it('embeds texts to JSON', async () => {
    const { code, stdout } = await cli('embed', 'a photo of a cat.', 'a dog');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.texts).toHaveLength(2);
    expect(out.texts[0].embedding).toHaveLength(out.dim);
    expect(Math.hypot(...out.texts[1].embedding)).toBeCloseTo(1, 4);
  });
});
