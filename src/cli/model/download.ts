/**
 * Downloading one large file: into `<dest>.part`, resumed with an HTTP Range request after an
 * interruption (validated by the server's ETag or Last-Modified through If-Range, and by the
 * total length), checked against its SHA-256, and only then renamed to `<dest>`. A file that
 * fails its check is removed with its `.part`: `<dest>` exists only when it is whole and right.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { asDiskError, InstallError } from './errors.ts';

export interface DownloadProgress {
  /** Bytes of the file present so far (kept from an earlier run included). */
  readonly received: number;
  /** The whole file's size, when the server said. */
  readonly total: number | null;
  /** Bytes this run has fetched. */
  readonly fetched: number;
}

export interface DownloadOptions {
  url: string;
  dest: string;
  /** Expected SHA-256 (lower-case hex); omitted: not checked. */
  sha256?: string;
  onProgress?(progress: DownloadProgress): void;
  /** No byte for this long ends the download (the `.part` is kept for the next run). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface DownloadResult {
  readonly path: string;
  /** Bytes fetched over the network by this run (0 when `dest` was already there). */
  readonly fetched: number;
  /** Where this run started: bytes kept from an interrupted run. */
  readonly resumedFrom: number;
  readonly bytes: number;
  /** The file's SHA-256 (computed even when none was expected). */
  readonly sha256: string;
  /** `dest` was already there and right: nothing fetched. */
  readonly reused: boolean;
}

/** What the `.part` was fetched from: a resumed request must ask for the same bytes. */
interface PartMeta {
  url: string;
  etag: string | null;
  lastModified: string | null;
  total: number | null;
}

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const { url, dest } = options;
  const part = `${dest}.part`;
  const metaFile = `${dest}.part.json`;
  await disk(dest, () => fs.mkdir(path.dirname(dest), { recursive: true }));

  const existing = await statOrNull(dest);
  if (existing) {
    const sha256 = await hashFile(dest);
    if (!options.sha256 || sha256 === options.sha256) return { path: dest, fetched: 0, resumedFrom: 0, bytes: existing.size, sha256, reused: true };
    // a file from an older pin or a copy gone bad: fetch it again rather than export it
    await disk(dest, () => fs.rm(dest, { force: true }));
  }

  const meta = await readMeta(metaFile);
  const partSize = (await statOrNull(part))?.size ?? 0;
  const canResume = partSize > 0 && meta !== null && meta.url === url && (meta.etag !== null || meta.lastModified !== null || meta.total !== null);
  const offset = canResume ? partSize : 0;

  const headers: Record<string, string> = {};
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    // If-Range: the server answers the rest only if the file is still the one we have the start of
    const validator = meta!.etag && !meta!.etag.startsWith('W/') ? meta!.etag : meta!.lastModified;
    if (validator) headers['if-range'] = validator;
  }

  // the start kept from an earlier run is hashed before asking: reading gigabytes after the
  // answer's headers would leave the connection idle that long
  const kept = offset > 0 ? createHash('sha256') : null;
  if (kept) await hashInto(kept, part, offset);

  const idle = new AbortController();
  const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  let timer = setTimeout(() => idle.abort(), idleMs);
  const poke = () => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(), idleMs);
  };
  const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
  const networkError = (e: unknown, received: number) => {
    if (options.signal?.aborted) return new InstallError('NETWORK_ERROR', `download of ${url} interrupted; run the command again to resume`, { url, received });
    const why = idle.signal.aborted ? `no data for ${Math.round(idleMs / 1000)} s` : describeFetchError(e);
    const kept = received > 0 ? `; ${received} bytes kept in ${part}, run the command again to resume` : '';
    return new InstallError('NETWORK_ERROR', `download of ${url} failed: ${why}${kept}`, { url, received });
  };

  try {
    let res: Response;
    try {
      res = await fetch(url, { headers, signal, redirect: 'follow' });
    } catch (e) {
      throw networkError(e, offset);
    }
    poke();

    let start: number;
    let total: number | null;
    if (res.status === 206 && offset > 0) {
      const range = parseContentRange(res.headers.get('content-range'));
      if (!range || range.start !== offset || (meta!.total !== null && range.total !== null && range.total !== meta!.total)) {
        // not the bytes we asked for: start again rather than splice two files together
        await res.body?.cancel();
        await dropPart(part, metaFile);
        return downloadFile(options);
      }
      start = offset;
      total = range.total ?? meta!.total;
    } else if (res.status === 200) {
      start = 0; // a fresh download, or the file changed since the `.part` was written (If-Range)
      const length = Number(res.headers.get('content-length'));
      total = Number.isFinite(length) && length >= 0 && res.headers.get('content-length') !== null ? length : null;
    } else if (res.status === 416 && offset > 0) {
      await res.body?.cancel();
      await dropPart(part, metaFile);
      return downloadFile(options);
    } else {
      await res.body?.cancel();
      if (res.status === 404 || res.status === 410) {
        throw new InstallError('DOWNLOAD_NOT_FOUND', `${url} answered ${res.status} ${res.statusText}: no such file there (check the URL or the mirror)`, { url, status: res.status });
      }
      throw new InstallError('DOWNLOAD_HTTP_ERROR', `${url} answered ${res.status} ${res.statusText}`, { url, status: res.status });
    }

    const next: PartMeta = { url, etag: res.headers.get('etag'), lastModified: res.headers.get('last-modified'), total };
    if (total !== null) await ensureSpace(part, total - start);
    await disk(metaFile, () => fs.writeFile(metaFile, JSON.stringify(next)));

    const hash = start > 0 && kept ? kept : createHash('sha256');
    const handle = await disk(part, () => fs.open(part, start > 0 ? 'r+' : 'w'));
    let received = start;
    let fetched = 0;
    try {
      if (start > 0) await disk(part, () => handle.truncate(start));
      options.onProgress?.({ received, total, fetched });
      if (!res.body) throw new InstallError('NETWORK_ERROR', `${url} answered without a body`, { url });
      const reader = res.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw networkError(e, received);
        }
        if (chunk.done) break;
        poke();
        hash.update(chunk.value);
        await disk(part, () => handle.write(chunk.value, 0, chunk.value.length, received));
        received += chunk.value.length;
        fetched += chunk.value.length;
        options.onProgress?.({ received, total, fetched });
      }
      await disk(part, () => handle.sync());
    } finally {
      await handle.close();
    }
    if (total !== null && received !== total) {
      throw new InstallError('NETWORK_ERROR', `download of ${url} ended after ${received} of ${total} bytes; run the command again to resume`, { url, received, total });
    }

    const sha256 = hash.digest('hex');
    if (options.sha256 && sha256 !== options.sha256) {
      await dropPart(part, metaFile);
      throw new InstallError('CHECKSUM_MISMATCH', `${url}: SHA-256 ${sha256}, expected ${options.sha256}; the download was deleted (a wrong mirror, or a corrupted transfer)`, {
        url,
        expected: options.sha256,
        actual: sha256,
      });
    }
    await disk(dest, () => fs.rename(part, dest));
    await fs.rm(metaFile, { force: true });
    return { path: dest, fetched, resumedFrom: start, bytes: received, sha256, reused: false };
  } finally {
    clearTimeout(timer);
  }
}

/** SHA-256 of a whole file. */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await hashInto(hash, file);
  return hash.digest('hex');
}

async function hashInto(hash: Hash, file: string, end?: number): Promise<void> {
  if (end === 0) return;
  const stream = createReadStream(file, end === undefined ? {} : { start: 0, end: end - 1 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

function parseContentRange(value: string | null): { start: number; total: number | null } | null {
  const m = value ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim()) : null;
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** Refuses early, naming the need, when the folder cannot hold what is left to fetch. */
async function ensureSpace(file: string, bytes: number): Promise<void> {
  const dir = path.dirname(file);
  const stats = await fs.statfs(dir).catch(() => null);
  if (!stats) return;
  const free = stats.bavail * stats.bsize;
  if (free < bytes) {
    throw new InstallError('DISK_ERROR', `${dir} has ${formatBytes(free)} free; the download needs ${formatBytes(bytes)} more`, { file, free, needed: bytes });
  }
}

async function readMeta(file: string): Promise<PartMeta | null> {
  try {
    const m = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<PartMeta>;
    if (typeof m.url !== 'string') return null;
    return { url: m.url, etag: m.etag ?? null, lastModified: m.lastModified ?? null, total: typeof m.total === 'number' ? m.total : null };
  } catch {
    return null;
  }
}

async function dropPart(part: string, metaFile: string): Promise<void> {
  await fs.rm(part, { force: true });
  await fs.rm(metaFile, { force: true });
}

async function statOrNull(file: string) {
  try {
    const s = await fs.stat(file);
    return s.isFile() ? s : null;
  } catch {
    return null;
  }
}

async function disk<T>(file: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    throw asDiskError(e, file);
  }
}

function describeFetchError(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err.cause?.code ?? err.cause?.message;
  return cause ? `${err.message ?? 'fetch failed'} (${cause})` : (err.message ?? String(e));
}

export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}
