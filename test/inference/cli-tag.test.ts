import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { collectImageFiles } from '../../src/cli/image-files.ts';
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

describe('image files of folders', () => {
  it('follows links to files and folders, reads a folder once however often it is reached, and skips broken links', async () => {
    const root = path.join(tmp, 'walk');
    const elsewhere = path.join(tmp, 'elsewhere');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    mkdirSync(elsewhere, { recursive: true });
    for (const f of ['a.jpg', 'notes.txt', 'sub/b.png']) writeFileSync(path.join(root, f), 'x');
    writeFileSync(path.join(elsewhere, 'c.webp'), 'x');
    symlinkSync(path.join(elsewhere, 'c.webp'), path.join(root, 'link-to-file.webp'));
    symlinkSync(elsewhere, path.join(root, 'link-to-folder'));
    symlinkSync('..', path.join(root, 'sub', 'loop')); // back up the tree
    symlinkSync(path.join(root, 'sub'), path.join(root, 'z-same-as-sub'));
    symlinkSync(path.join(tmp, 'missing.jpg'), path.join(root, 'broken.jpg'));

    const flat = await collectImageFiles([root], false);
    expect(flat.map((f) => path.relative(root, f))).toEqual(['a.jpg', 'link-to-file.webp']);
    const deep = await collectImageFiles([root], true);
    expect(deep.map((f) => path.relative(root, f))).toEqual(['a.jpg', 'link-to-file.webp', path.join('link-to-folder', 'c.webp'), path.join('sub', 'b.png')]);
    // a link given as an argument counts as what it points to
    expect(await collectImageFiles([path.join(root, 'link-to-folder')], false)).toEqual([path.join(root, 'link-to-folder', 'c.webp')]);
    await expect(collectImageFiles([path.join(root, 'broken.jpg')], false)).rejects.toThrow(/no such file or folder/);
  });
});

describe('the omnitag command', () => {
  it('is package.json\'s bin, an executable file', () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    expect(pkg.bin).toEqual({ omnitag: 'bin/omnitag.js' });
    expect(statSync(path.join(repoRoot, pkg.bin.omnitag)).mode & 0o755).toBe(0o755);
  });

  it('runs the TypeScript CLI through tsx: help names the commands', async () => {
    const { stdout } = await run(path.join(repoRoot, 'bin', 'omnitag.js'), ['--help'], { cwd: repoRoot });
    expect(stdout).toMatch(/Usage: omnitag/);
    expect(stdout).toMatch(/tag\|images \[options\] <paths\.\.\.>/);
    expect(stdout).toMatch(/embed/);
    expect(stdout).toMatch(/selftest/);
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
    const { code, stdout, stderr } = await cli(images, '--vocab', vocab, '--format', 'json', '--top', '2', '--logits', '--explain');
    expect(code).toBe(0);
    // a pack of random weights (the demo pack) is announced on stderr, never in the JSON
    const random = JSON.parse(readFileSync(path.join(packDir!, 'manifest.json'), 'utf8')).randomWeights === true;
    expect(/note: The model pack has random weights .*npx omnitag model install/.test(stderr)).toBe(random);
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

  it('--heatmaps DIR writes one overlay PNG per image and shown tag, of the asked size', async () => {
    const vocab = write('hm-vocab.json', JSON.stringify({ food: ['a photo of food.'], sky: ['a photo of the sky.'], 'hot dog': ['a hot dog.'] }));
    const dir = path.join(tmp, 'maps');
    const one = path.join(images, 'demo4.jpg');
    // the same file name in another folder gets maps of its own, not over the first one's
    mkdirSync(path.join(tmp, 'other'), { recursive: true });
    const sameName = path.join(tmp, 'other', 'demo4.jpg');
    copyFileSync(path.join(images, 'demo2.jpg'), sameName);
    const { code, stdout } = await cli(one, path.join(images, 'demo2.jpg'), sameName, '--vocab', vocab, '--format', 'json', '--top', '2', '--heatmaps', dir, '--heatmap-size', '100');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    const written = out.images.flatMap((i: { tags: { heatmap: string }[] }) => i.tags.map((t) => t.heatmap));
    expect(written).toHaveLength(6);
    expect(new Set(written).size).toBe(6);
    expect(readdirSync(dir).sort()).toEqual(written.map((f: string) => path.basename(f)).sort());
    expect(out.images[2].tags[0].heatmap).toMatch(/demo4-2\./);
    const sharp = (await import('sharp')).default;
    const source = await sharp(one).metadata();
    const meta = await sharp(out.images[0].tags[0].heatmap).metadata();
    expect(meta.format).toBe('png');
    expect(Math.max(meta.width!, meta.height!)).toBe(100);
    // aspect ratio of the (upright) photo kept
    const [w, h] = (source.orientation ?? 1) >= 5 ? [source.height!, source.width!] : [source.width!, source.height!];
    expect(Math.abs(meta.width! / meta.height! - w / h)).toBeLessThan(0.05);
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

  it('tags with `omnitag tag` through the bin, the same as `images` and as no verb; links in folders are followed', async () => {
    const folder = path.join(tmp, 'linked-images');
    mkdirSync(folder, { recursive: true });
    symlinkSync(path.join(images, 'demo4.jpg'), path.join(folder, 'demo4.jpg'));
    symlinkSync(images, path.join(folder, 'more'));
    // batches of one: the three runs then compute exactly the same numbers
    const args = [folder, '--recursive', '--format', 'json', '--top', '3', '--batch-size', '1', '--pack', packDir!, '--threads', '1'];
    const bin = await run(process.execPath, [path.join(repoRoot, 'bin', 'omnitag.js'), 'tag', ...args], { cwd: repoRoot, maxBuffer: 64 << 20 });
    const out = JSON.parse(bin.stdout);
    expect(out.images.map((i: { file: string }) => path.relative(folder, i.file))).toEqual([
      'demo4.jpg',
      ...['1641173_2291260800.jpg', 'demo2.jpg', 'demo4.jpg', 'openset_example.jpg'].map((f) => path.join('more', f)),
    ]);
    for (const image of out.images) expect(image.tags).toHaveLength(3);
    const alias = await cli('images', ...args.slice(0, -4));
    const noVerb = await cli(...args.slice(0, -4));
    expect(JSON.parse(alias.stdout)).toEqual(out);
    expect(JSON.parse(noVerb.stdout)).toEqual(out);
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
