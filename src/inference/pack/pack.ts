import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError, ErrorCode } from '../../core/errors.ts';
import {
  GRAPH_FILES,
  PACK_FORMAT,
  PACK_FORMAT_VERSION,
  packManifestSchema,
  type GraphName,
  type PackManifest,
} from './manifest.ts';

export const MANIFEST_FILE = 'manifest.json';

/** A validated model pack on disk. Cheap to pass around: it holds paths, not data. */
export interface ModelPack {
  readonly dir: string;
  readonly manifest: PackManifest;
  /** Absolute path of a file listed in the manifest. */
  file(relative: string): string;
  graphPath(graph: GraphName): string;
}

export interface OpenPackOptions {
  /** Hash every file and compare with the manifest (about 1 s per GB). */
  verifyChecksums?: boolean;
}

/** Start-up error that names the pack file at fault. */
export function packError(dir: string, file: string, problem: string, cause?: unknown): AppError {
  return new AppError(ErrorCode.MODEL_UNAVAILABLE, `model pack ${dir}: ${file}: ${problem}`, {
    cause,
    details: { packDir: dir, file },
  });
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `textEncoderId` as the pack format defines it: a hash of the two file hashes. */
export function textEncoderIdOf(textEncoderSha: string, tokenizerSha: string): string {
  return createHash('sha256').update(`${textEncoderSha}:${tokenizerSha}`, 'utf8').digest('hex');
}

/**
 * Reads and validates a pack: manifest schema, format version, every listed file present with
 * its size (and hash on request), dimensions consistent with each other. Any problem is an
 * AppError(MODEL_UNAVAILABLE) whose message and `details.file` name the file.
 */
export async function openModelPack(dirInput: string, options: OpenPackOptions = {}): Promise<ModelPack> {
  const dir = path.resolve(dirInput);
  const manifest = await readManifest(dir);
  const abs = (relative: string) => path.join(dir, ...relative.split('/'));

  const required = [
    ...Object.values(GRAPH_FILES),
    manifest.tokenizer.file,
    manifest.builtin.tags,
    manifest.builtin.labelEmbeds,
  ];
  if (manifest.heatmaps) required.push(manifest.heatmaps.graph);
  for (const name of required) {
    if (!manifest.files[name]) throw packError(dir, MANIFEST_FILE, `"files" does not list ${name}`);
  }

  for (const [name, entry] of Object.entries(manifest.files)) {
    const size = await stat(abs(name)).then(
      (s) => (s.isFile() ? s.size : -1),
      () => -1,
    );
    if (size < 0) throw packError(dir, name, 'file is missing');
    if (size !== entry.bytes) {
      throw packError(dir, name, `size is ${size} bytes, the manifest says ${entry.bytes} (truncated or replaced?)`);
    }
  }
  if (options.verifyChecksums) {
    for (const [name, entry] of Object.entries(manifest.files)) {
      const actual = await sha256File(abs(name));
      if (actual !== entry.sha256) {
        throw packError(dir, name, `sha256 is ${actual}, the manifest says ${entry.sha256} (corrupt file?)`);
      }
    }
  }

  checkConsistency(dir, manifest);
  return {
    dir,
    manifest,
    file: abs,
    graphPath: (graph) => abs(GRAPH_FILES[graph]),
  };
}

async function readManifest(dir: string): Promise<PackManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw packError(dir, MANIFEST_FILE, 'cannot read it (is this a model pack directory?)', e);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw packError(dir, MANIFEST_FILE, `not valid JSON: ${(e as Error).message}`, e);
  }
  const head = (raw ?? {}) as { format?: unknown; formatVersion?: unknown };
  if (head.format !== PACK_FORMAT) {
    throw packError(dir, MANIFEST_FILE, `format is ${JSON.stringify(head.format)}, expected "${PACK_FORMAT}"`);
  }
  if (head.formatVersion !== PACK_FORMAT_VERSION) {
    throw packError(
      dir,
      MANIFEST_FILE,
      `formatVersion ${JSON.stringify(head.formatVersion)} is not supported (this server reads ${PACK_FORMAT_VERSION})`,
    );
  }
  const parsed = packManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw packError(dir, MANIFEST_FILE, `invalid manifest: ${problems.join('; ')}`);
  }
  return parsed.data;
}

function checkConsistency(dir: string, m: PackManifest): void {
  if (m.tokenizer.context !== m.dims.textContext) {
    throw packError(dir, MANIFEST_FILE, `tokenizer.context ${m.tokenizer.context} != dims.textContext ${m.dims.textContext}`);
  }
  const te = m.files[GRAPH_FILES.textEncoder]!.sha256;
  const tok = m.files[m.tokenizer.file]!.sha256;
  if (textEncoderIdOf(te, tok) !== m.textEncoderId) {
    throw packError(dir, MANIFEST_FILE, 'textEncoderId does not match the hashes of text_encoder.onnx and the tokenizer');
  }
  if (m.heatmaps) {
    const [h, w] = m.heatmaps.grid;
    if (h * w + 1 !== m.dims.imageTokens) {
      throw packError(dir, MANIFEST_FILE, `heatmaps.grid ${h}×${w} + 1 token != dims.imageTokens ${m.dims.imageTokens}`);
    }
  }
  const b = m.builtin;
  const bytesPerValue = b.dtype === 'float16' ? 2 : 4;
  const expected = b.count * b.descriptionsPerTag * m.dims.embedDim * bytesPerValue;
  const actual = m.files[b.labelEmbeds]!.bytes;
  if (actual !== expected) {
    throw packError(
      dir,
      b.labelEmbeds,
      `${actual} bytes, expected ${b.count}×${b.descriptionsPerTag}×${m.dims.embedDim} ${b.dtype} = ${expected}`,
    );
  }
}
