/**
 * `omnitag model install` against a checkpoint host on loopback that serves the small
 * upstream-format checkpoints of ../shared/reference/upstream-tiny: downloads (progress, resume
 * after a dropped connection, checksum refusal, 404), a missing Python, and the whole path to a
 * pack that passes its self-test and serves `tagImage` over HTTP.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, type DownloadProgress } from '../../src/cli/model/download.ts';
import { InstallError } from '../../src/cli/model/errors.ts';
import { pythonInstructions } from '../../src/cli/model/python.ts';
import { gql, startTestApp, type TestApp } from '../support/app.ts';
import { startFileServer, type FileServer } from '../support/file-server.ts';
import { createTenantWithKeys } from '../support/tenants.ts';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const sharedDir = process.env.OMNITAG_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared');
const upstream = path.join(sharedDir, 'reference', 'upstream-tiny');
const RAM = path.join(upstream, 'ram_plus_tiny.pth'); // upstream's {'model': state_dict} container
const CLIP = path.join(upstream, 'clip_tiny_jit.pt'); // a TorchScript archive like OpenAI's ViT-B-16.pt
const hasUpstream = existsSync(RAM) && existsSync(CLIP);
const PYTHON = process.env.OMNITAG_PYTHON ?? '/usr/bin/python3';
const hasTorch = (() => {
  try {
    execFileSync(PYTHON, ['-c', 'import torch, onnx'], { stdio: 'ignore', timeout: 120_000 });
    return true;
  } catch {
    return false;
  }
})();
if (!hasUpstream) console.warn(`model install tests skipped: ${upstream} (the tiny upstream-format checkpoints) is absent`);
else if (!hasTorch) console.warn(`model install export tests skipped: ${PYTHON} cannot import torch and onnx`);

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}
function runCli(args: string[], timeout = 240_000): Promise<CliRun> {
  return new Promise((resolve) => {
    // the installer's own variables from the environment running the tests must not leak in
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^OMNITAG_(RAM|CLIP)_|^OMNITAG_(PYTHON|MODEL_CACHE)$/.test(k)));
    execFile(process.execPath, [path.join(repoRoot, 'bin', 'omnitag.js'), 'model', 'install', ...args], { cwd: repoRoot, timeout, env }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!hasUpstream)('model install: downloads', () => {
  let server: FileServer;
  let tmp: string;
  const size = hasUpstream ? statSync(RAM).size : 0;
  beforeAll(async () => {
    server = await startFileServer();
    server.serve('/ram.pth', RAM);
    server.serve('/clip.pt', CLIP);
    tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-install-'));
  });
  afterAll(async () => {
    await server?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('downloads with progress, checks the SHA-256, and leaves only the finished file', async () => {
    const dest = path.join(tmp, 'a', 'ram.pth');
    const events: DownloadProgress[] = [];
    const r = await downloadFile({ url: `${server.url}/ram.pth`, dest, sha256: sha(RAM), onProgress: (p) => events.push(p) });
    expect(r).toMatchObject({ path: dest, fetched: size, resumedFrom: 0, bytes: size, sha256: sha(RAM), reused: false });
    expect(events.length).toBeGreaterThan(2);
    expect(events.every((e) => e.total === size)).toBe(true);
    expect(events.every((e, i) => i === 0 || e.received >= events[i - 1]!.received)).toBe(true);
    expect(events.at(-1)).toEqual({ received: size, total: size, fetched: size });
    expect(sha(dest)).toBe(sha(RAM));
    expect(readdirSync(path.dirname(dest))).toEqual(['ram.pth']);
    // a second run finds it whole and fetches nothing
    const before = server.requests.length;
    const again = await downloadFile({ url: `${server.url}/ram.pth`, dest, sha256: sha(RAM) });
    expect(again).toMatchObject({ reused: true, fetched: 0 });
    expect(server.requests.length).toBe(before);
  });

  it('resumes an interrupted download with a Range request and fetches only the rest', async () => {
    const dest = path.join(tmp, 'b', 'ram.pth');
    const cut = 1_000_000;
    server.cutNextAfter('/ram.pth', cut);
    const first = await downloadFile({ url: `${server.url}/ram.pth`, dest, sha256: sha(RAM) }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(InstallError);
    expect((first as InstallError).code).toBe('NETWORK_ERROR');
    expect((first as InstallError).exitCode).toBe(5);
    expect((first as InstallError).message).toMatch(/run the command again to resume/);
    expect(existsSync(dest)).toBe(false);
    const kept = statSync(`${dest}.part`).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(cut);

    const seen = server.requests.length;
    const events: DownloadProgress[] = [];
    const second = await downloadFile({ url: `${server.url}/ram.pth`, dest, sha256: sha(RAM), onProgress: (p) => events.push(p) });
    expect(second).toMatchObject({ resumedFrom: kept, fetched: size - kept, bytes: size, reused: false });
    const resumed = server.requests.slice(seen);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]).toMatchObject({ range: `bytes=${kept}-`, status: 206, bytesSent: size - kept });
    expect(resumed[0]!.ifRange).toMatch(/^"/); // the ETag of the first answer
    expect(events[0]!.received).toBe(kept);
    expect(sha(dest)).toBe(sha(RAM));
    expect(readdirSync(path.dirname(dest))).toEqual(['ram.pth']);
  });

  it('starts again from zero when the file changed on the server since the interruption (If-Range)', async () => {
    const dest = path.join(tmp, 'c', 'file');
    server.serve('/changing', RAM);
    server.cutNextAfter('/changing', 500_000);
    await expect(downloadFile({ url: `${server.url}/changing`, dest })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    server.serve('/changing', CLIP); // a new version: new ETag and Last-Modified
    const r = await downloadFile({ url: `${server.url}/changing`, dest, sha256: sha(CLIP) });
    expect(r).toMatchObject({ resumedFrom: 0, fetched: statSync(CLIP).size });
    expect(server.requests.at(-1)).toMatchObject({ status: 200 });
    expect(server.requests.at(-1)!.range).toMatch(/^bytes=\d+-$/);
    expect(sha(dest)).toBe(sha(CLIP));
  });

  it('refuses a file whose SHA-256 is wrong and leaves nothing behind', async () => {
    const dest = path.join(tmp, 'd', 'clip.pt');
    const wrong = sha(RAM);
    const e = await downloadFile({ url: `${server.url}/clip.pt`, dest, sha256: wrong }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InstallError);
    expect(e).toMatchObject({ code: 'CHECKSUM_MISMATCH', exitCode: 6, details: { expected: wrong, actual: sha(CLIP) } });
    expect(readdirSync(path.dirname(dest))).toEqual([]);
  });

  it('answers a 404 with DOWNLOAD_NOT_FOUND and writes nothing', async () => {
    const dest = path.join(tmp, 'e', 'x.pth');
    await expect(downloadFile({ url: `${server.url}/no-such-file.pth`, dest })).rejects.toMatchObject({ code: 'DOWNLOAD_NOT_FOUND', exitCode: 3, details: { status: 404 } });
    expect(readdirSync(path.dirname(dest))).toEqual([]);
  });

  it('answers a destination it cannot write with DISK_ERROR', async () => {
    const notAFolder = path.join(tmp, 'plain-file');
    writeFileSync(notAFolder, 'x');
    await expect(downloadFile({ url: `${server.url}/ram.pth`, dest: path.join(notAFolder, 'sub', 'ram.pth') })).rejects.toMatchObject({ code: 'DISK_ERROR', exitCode: 7, details: { errno: 'ENOTDIR' } });
  });

  it('answers a host that refuses connections with NETWORK_ERROR', async () => {
    const closed = await startFileServer();
    const url = `${closed.url}/ram.pth`;
    await closed.close();
    await expect(downloadFile({ url, dest: path.join(tmp, 'f', 'x') })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
  });

  it.skipIf(!hasTorch)('the command exits 3 on a 404, after checking Python, with nothing left in the cache', async () => {
    const cache = path.join(tmp, 'cache-404');
    const r = await runCli(['--ram-url', `${server.url}/missing.pth`, '--clip-url', `${server.url}/clip.pt`, '--cache-dir', cache, '--out', path.join(tmp, 'never'), '--no-progress']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/error \[DOWNLOAD_NOT_FOUND\]: .*missing\.pth answered 404/);
    expect(r.stdout).toBe('');
    expect(readdirSync(cache)).toEqual([]);
    expect(existsSync(path.join(tmp, 'never'))).toBe(false);
  });

  it.skipIf(!hasTorch)('refuses --from-files whose SHA-256 is not the pinned one (exit 6)', async () => {
    const r = await runCli(['--from-files', RAM, CLIP, '--python', PYTHON, '--out', path.join(tmp, 'never2')]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/error \[CHECKSUM_MISMATCH\]: .*ram_plus_tiny\.pth: SHA-256 [0-9a-f]{64}, expected 497c1788/);
  });
});

describe.skipIf(!hasUpstream || !hasTorch)('model install: --from-files, --no-verify, --int8', () => {
  it('exports files on disk unchecked, passing --quantize int8 to the export tool (or saying it lacks it)', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-install-int8-'));
    try {
      const out = path.join(tmp, 'pack');
      const r = await runCli(['--from-files', RAM, CLIP, '--no-verify', '--int8', '--tags', path.join(upstream, 'config.json'), '--out', out, '--python', PYTHON, '--cache-dir', path.join(tmp, 'cache')]);
      expect(r.stderr).toMatch(/ram_plus_tiny\.pth: SHA-256 not checked \(--no-verify\)/);
      expect(r.stderr).toMatch(/exporting: .* -m tools\.export .*--quantize int8/);
      const exportHelp = execFileSync(PYTHON, ['-m', 'tools.export', '--help'], { cwd: repoRoot, encoding: 'utf8' });
      if (exportHelp.includes('--quantize')) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe(`OMNITAG_MODEL_PACK=${out} npm start\n`);
      } else {
        // the export tool of this checkout has no int8 yet: a typed failure that says so, and no pack
        expect(r.code).toBe(9);
        expect(r.stderr).toMatch(/error \[EXPORT_FAILED\]: .*this export tool has no int8 quantization/);
        expect(existsSync(out)).toBe(false);
      }
      expect(existsSync(path.join(tmp, 'cache'))).toBe(false); // nothing downloaded
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('model install: Python', () => {
  it('names what to install when the interpreter is missing (exit 8)', async () => {
    const r = await runCli(['--python', '/nonexistent/bin/python3', '--ram-url', 'http://127.0.0.1:9/never', '--clip-url', 'http://127.0.0.1:9/never']);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/error \[PYTHON_MISSING\]: The model export needs Python 3 with PyTorch/);
    expect(r.stderr).toMatch(/\/nonexistent\/bin\/python3 was not found/);
    const debian = /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '');
    if (debian) expect(r.stderr).toMatch(/sudo apt-get install python3-torch python3-onnx python3-numpy python3-pil python3-regex libopenblas0-pthread/);
    else expect(r.stderr).toMatch(/pip install torch onnx numpy pillow regex/);
    expect(r.stderr).toMatch(/docker compose run --rm export/);
  });

  it('gives pip instructions off Debian, and names a module that is missing', () => {
    const mac = pythonInstructions('python3 lacks the Python package "torch"', { os: 'darwin', distro: [] }, 'npx omnitag model install');
    expect(mac).toMatch(/lacks the Python package "torch"/);
    expect(mac).toMatch(/\.venv-export\/bin\/pip install torch onnx numpy pillow regex/);
    expect(mac).toMatch(/npx omnitag model install --python \.venv-export\/bin\/python/);
    expect(mac).not.toMatch(/apt-get/);
    const ubuntu = pythonInstructions('x', { os: 'linux', distro: ['ubuntu', 'debian'] }, 'npx omnitag model install');
    expect(ubuntu).toMatch(/apt-get install python3-torch/);
  });
});

describe.skipIf(!hasUpstream || !hasTorch)('model install: the whole path', () => {
  let server: FileServer;
  let tmp: string;
  let run: CliRun;
  let api: TestApp | undefined;
  const packDir = () => path.join(tmp, 'pack');
  beforeAll(async () => {
    server = await startFileServer();
    server.serve('/models/ram_plus_tiny.pth', RAM);
    server.serve('/models/clip_tiny_jit.pt', CLIP);
    tmp = mkdtempSync(path.join(os.tmpdir(), 'omnitag-install-full-'));
    server.cutNextAfter('/models/ram_plus_tiny.pth', 700_000); // the first attempt is cut: see the resumed request below
    const args = [
      'ram-plus',
      '--ram-url', `${server.url}/models/ram_plus_tiny.pth`,
      '--clip-url', `${server.url}/models/clip_tiny_jit.pt`,
      '--ram-sha256', sha(RAM),
      '--clip-sha256', sha(CLIP),
      '--tags', path.join(upstream, 'config.json'), // its 12 tags match the tiny checkpoint's label_embed
      '--cache-dir', path.join(tmp, 'cache'),
      '--out', packDir(),
      '--python', PYTHON,
    ];
    const interrupted = await runCli(args);
    expect(interrupted.code).toBe(5);
    expect(interrupted.stderr).toMatch(/error \[NETWORK_ERROR\]/);
    run = await runCli(args);
  }, 400_000);
  afterAll(async () => {
    await api?.stop();
    await server?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('resumes, exports, verifies and prints the line that starts the server', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`OMNITAG_MODEL_PACK=${packDir()} npm start\n`);
    expect(run.stderr).toMatch(/ram_plus_swin_large_14m\.pth: resumed at /); // saved under the official file names
    expect(run.stderr).toMatch(/ViT-B-16\.pt: 100% /);
    expect(run.stderr).toMatch(/self-test passed \(\d+ checks on cpu\)/);
    const resumed = server.requests.filter((r) => r.path === '/models/ram_plus_tiny.pth');
    expect(resumed.map((r) => r.status)).toEqual([200, 206]);
    // the second run asked for the rest only, and got only the rest
    const kept = Number(/^bytes=(\d+)-$/.exec(resumed[1]!.range ?? '')?.[1]);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(resumed[0]!.bytesSent);
    expect(resumed[1]!.bytesSent).toBe(statSync(RAM).size - kept);
    // checkpoints kept whole for a later run, nothing half-written
    expect(readdirSync(path.join(tmp, 'cache')).sort()).toEqual(['ViT-B-16.pt', 'ram_plus_swin_large_14m.pth']);
    const manifest = JSON.parse(readFileSync(path.join(packDir(), 'manifest.json'), 'utf8'));
    expect(manifest.randomWeights).toBe(false);
    for (const [file, entry] of Object.entries(manifest.files as Record<string, { sha256: string }>)) expect(sha(path.join(packDir(), file))).toBe(entry.sha256);
  });

  it('serves tagImage on the new pack through the HTTP server, with no demo warning', async () => {
    expect(run.code).toBe(0);
    api = await startTestApp({ OMNITAG_MODEL_PACK: packDir(), OMNITAG_VERIFY_PACK: 'true' });
    const t = await createTenantWithKeys(api.url, 'Installed');
    const info = await gql(api.url, '{ modelInfo { packName randomWeights builtinTagCount } }', {}, t.clientKey);
    expect(info.data!.modelInfo).toEqual({ packName: 'ram-plus-swin-large-14m', randomWeights: false, builtinTagCount: 12 });
    const v = await gql(api.url, 'mutation { createVocabulary(input: { name: "builtin", fromBuiltin: true }) { id stats { tags } } }', {}, t.adminKey);
    expect(v.data!.createVocabulary.stats.tags).toBe(12);
    const image = (await sharp(path.join(sharedDir, 'reference', 'upstream-tiny', 'images', 'synth_rgba.png')).png().toBuffer()).toString('base64');
    const tagged = await gql(api.url, 'mutation($v: ID!, $img: String!) { tagImage(vocabularyId: $v, image: { base64: $img }, options: { includeAll: true }) { scores { name score } } }', { v: v.data!.createVocabulary.id, img: image }, t.clientKey);
    expect(tagged.errors).toBeUndefined();
    expect(tagged.data!.tagImage.scores).toHaveLength(12);
    expect(tagged.extensions?.warnings).toBeUndefined();
  });
});
