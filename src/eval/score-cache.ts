/**
 * A cache of scores on disk, so that a long evaluation resumes where it stopped and a
 * calibration can be run again without scoring anything: one JSON line per image (its
 * probabilities over the tag list as base64 float32, or its error), after a header line with
 * the key of what produced them (model, vocabulary, tag list). Lines are appended as images are
 * scored; a line cut short by a crash is dropped on the next open.
 */
import { open, readFile, truncate } from 'node:fs/promises';
import { badInput } from '../core/errors.ts';

const FORMAT = 'omnitag-eval-scores/1';

export interface CachedImage {
  scores?: Float32Array;
  error?: { code: string; message: string };
}

export class ScoreCache {
  private constructor(
    readonly file: string,
    readonly entries: Map<string, CachedImage>,
    private readonly handle: Awaited<ReturnType<typeof open>>,
  ) {}

  /**
   * Opens (or creates) the cache for `key`; a cache made for another key is refused rather than
   * mixed in. `retryErrors` forgets the images that failed, so they are scored again.
   */
  static async open(file: string, key: string, tags: number, retryErrors = true): Promise<ScoreCache> {
    const entries = new Map<string, CachedImage>();
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    let keep = 0;
    if (text) {
      const lines = text.split('\n');
      const header = safeParse(lines[0]!) as { format?: string; key?: string } | null;
      if (header?.format !== FORMAT) throw badInput(`${file} is not a score cache; remove it or name another with --cache`);
      if (header.key !== key) throw badInput(`${file} holds scores of another model, vocabulary or tag list; remove it or name another with --cache`);
      keep = Buffer.byteLength(lines[0]!) + 1;
      for (const line of lines.slice(1)) {
        const row = safeParse(line) as { image?: string; scores?: string; error?: { code: string; message: string } } | null;
        if (!row || typeof row.image !== 'string') break;
        if (row.scores !== undefined) {
          const bytes = Buffer.from(row.scores, 'base64');
          if (bytes.byteLength !== tags * 4) break;
          entries.set(row.image, { scores: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
        } else if (row.error && !retryErrors) entries.set(row.image, { error: row.error });
        keep += Buffer.byteLength(line) + 1;
      }
      // drop a line a crash cut short, so that new lines start clean
      if (keep < Buffer.byteLength(text)) await truncate(file, keep);
    }
    const handle = await open(file, 'a');
    if (!text) await handle.write(`${JSON.stringify({ format: FORMAT, key, tags })}\n`);
    return new ScoreCache(file, entries, handle);
  }

  async add(image: string, entry: CachedImage): Promise<void> {
    this.entries.set(image, entry);
    const row = entry.scores ? { image, scores: Buffer.from(entry.scores.buffer, entry.scores.byteOffset, entry.scores.byteLength).toString('base64') } : { image, error: entry.error };
    await this.handle.write(`${JSON.stringify(row)}\n`);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

function safeParse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}
