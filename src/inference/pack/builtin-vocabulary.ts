import { open, readFile, type FileHandle } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { z } from 'zod';
import { float16ToFloat32 } from './float16.ts';
import { singleSegmentBank, type BankSegment, type LabelBank } from '../scoring/label-bank.ts';
import { packError, type ModelPack } from './pack.ts';

export interface BuiltinTag {
  readonly name: string;
  readonly nameZh?: string;
  readonly threshold: number;
  readonly descriptionCount: number;
}

/** The pack's own vocabulary (RAM++'s 4,585 tags with their description embeddings). */
export interface BuiltinVocabulary {
  readonly tags: readonly BuiltinTag[];
  /**
   * Its rows, loaded once per process: every vocabulary that uses built-in tags points into
   * this one segment instead of copying it.
   */
  readonly segment: BankSegment;
  /** The built-in tags as a bank (row i is tag i, the pack's thresholds). */
  readonly bank: LabelBank;
}

const tagsSchema = z.array(
  z.object({
    name: z.string().min(1),
    nameZh: z.string().optional(),
    // 1.0 occurs upstream: a tag that never passes
    threshold: z.number().min(0).max(1).optional(),
    /** Real descriptions of this tag (the rest of its D rows are zero padding). Default D. */
    descriptionCount: z.number().int().positive().optional(),
  }),
);

/** Values converted between yields, so a full-size fp16 bank never blocks the loop for long. */
const CONVERT_SLICE = 1 << 21;

export async function loadBuiltinVocabulary(pack: ModelPack): Promise<BuiltinVocabulary> {
  const { builtin, dims, thresholds, files } = pack.manifest;
  const C = builtin.count;
  const D = builtin.descriptionsPerTag;
  const E = dims.embedDim;

  const rawTags = await readJson(pack, builtin.tags);
  const parsed = tagsSchema.safeParse(rawTags);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw packError(pack.dir, builtin.tags, `invalid tag list at ${first?.path.join('.')}: ${first?.message}`);
  }
  if (parsed.data.length !== C) {
    throw packError(pack.dir, builtin.tags, `${parsed.data.length} tags, the manifest says builtin.count = ${C}`);
  }
  const tags = parsed.data.map((t, i) => {
    const count = t.descriptionCount ?? D;
    if (count > D) throw packError(pack.dir, builtin.tags, `tag ${i} has descriptionCount ${count} > descriptionsPerTag ${D}`);
    return Object.freeze({
      name: t.name,
      ...(t.nameZh ? { nameZh: t.nameZh } : {}),
      threshold: t.threshold ?? thresholds.builtinDefault,
      descriptionCount: count,
    });
  });

  const embeds = new Float32Array(new SharedArrayBuffer(C * D * E * 4));
  const file = await open(pack.file(builtin.labelEmbeds), 'r');
  try {
    if (builtin.dtype === 'float32') {
      // the file is little-endian, as is every platform onnxruntime-node ships for
      await readExactly(file, new Uint8Array(embeds.buffer), pack, builtin.labelEmbeds);
    } else {
      const half = new Uint16Array(C * D * E);
      await readExactly(file, new Uint8Array(half.buffer), pack, builtin.labelEmbeds);
      for (let start = 0; start < half.length; start += CONVERT_SLICE) {
        const end = Math.min(half.length, start + CONVERT_SLICE);
        float16ToFloat32(half.subarray(start, end), embeds.subarray(start, end));
        await yieldToLoop();
      }
    }
  } finally {
    await file.close();
  }

  const mask = new Uint8Array(new SharedArrayBuffer(C * D));
  tags.forEach((t, c) => mask.fill(1, c * D, c * D + t.descriptionCount));
  const key = `builtin:${files[builtin.labelEmbeds]!.sha256}`;
  const segment: BankSegment = Object.freeze({ key, tagCount: C, maxDescriptions: D, embedDim: E, precision: 'float32', embeds, mask });
  const bank = singleSegmentBank(
    key,
    segment,
    Float32Array.from(tags, (t) => t.threshold),
  );
  return Object.freeze({ tags: Object.freeze(tags), segment, bank });
}

async function readJson(pack: ModelPack, relative: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(pack.file(relative), 'utf8'));
  } catch (e) {
    throw packError(pack.dir, relative, `cannot read JSON: ${(e as Error).message}`, e);
  }
}

async function readExactly(
  file: FileHandle,
  into: Uint8Array,
  pack: ModelPack,
  relative: string,
): Promise<void> {
  let offset = 0;
  while (offset < into.length) {
    // reads of at most 1 GiB: larger single reads fail on some platforms
    const { bytesRead } = await file.read(into, offset, Math.min(into.length - offset, 1 << 30), offset);
    if (bytesRead === 0) throw packError(pack.dir, relative, `file ends after ${offset} of ${into.length} bytes`);
    offset += bytesRead;
  }
}
