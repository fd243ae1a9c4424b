import { z } from 'zod';

/** The pack format this server reads (docs/model-pack.md). */
export const PACK_FORMAT = 'omnitag-model-pack';
export const PACK_FORMAT_VERSION = 1;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lower-case sha256 hex digest');
const positiveInt = z.number().int().positive();
const triple = z.tuple([z.number(), z.number(), z.number()]);

const fileEntry = z.object({
  bytes: z.number().int().nonnegative(),
  sha256: sha256Hex,
});

/** Pack-relative path with `/` separators that cannot leave the pack directory. */
const packPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.includes('\\') && !p.split('/').includes('..'), {
    message: 'must be a relative path inside the pack',
  });

export const packManifestSchema = z.object({
  // format and version are checked before the rest so a foreign file gets a plain message
  format: z.literal(PACK_FORMAT),
  formatVersion: z.literal(PACK_FORMAT_VERSION),
  name: z.string().min(1),
  description: z.string().optional(),
  precision: z.enum(['fp32', 'fp16', 'int8']),
  /** Seeded random weights (a demo or benchmark pack): its tags mean nothing. See `hasRandomWeights`. */
  randomWeights: z.boolean().optional(),
  /** int8 packs: how the graphs were quantised and what it cost against float32 (the export's drift report). */
  quantization: z
    .looseObject({
      method: z.string(),
      selftestTolerance: z.number().positive().optional(),
      drift: z
        .looseObject({
          imageEmbeddingCosine: z.looseObject({ min: z.number(), mean: z.number() }),
          logitAbsDiff: z.looseObject({ max: z.number(), mean: z.number() }),
          logitPearson: z.looseObject({ min: z.number(), mean: z.number() }),
          passedTags: z.looseObject({ jaccardMin: z.number(), jaccardMean: z.number() }),
          images: z.array(z.string()),
          tags: z.number().int(),
        })
        .optional(),
    })
    .optional(),
  // provenance only: free-form beyond tool and version
  createdBy: z
    .looseObject({
      tool: z.string(),
      version: z.string(),
    })
    .optional(),
  image: z.object({
    size: positiveInt,
    mean: triple,
    std: triple.refine((s) => s.every((v) => v > 0), 'std must be positive'),
    resize: z.string().default('bilinear-antialias'),
  }),
  dims: z.looseObject({
    imageTokens: positiveInt,
    embedDim: positiveInt,
    textContext: positiveInt,
    textVocabSize: positiveInt,
  }),
  reweightScale: z.number().optional(),
  thresholds: z.object({
    builtinDefault: z.number().gt(0).lt(1),
    openSet: z.number().gt(0).lt(1),
  }),
  tokenizer: z.object({
    file: packPath,
    bos: z.number().int().nonnegative(),
    eos: z.number().int().nonnegative(),
    pad: z.number().int().nonnegative(),
    context: positiveInt,
    lowercase: z.boolean().default(true),
  }),
  textEncoderId: sha256Hex,
  builtin: z.object({
    tags: packPath,
    labelEmbeds: packPath,
    dtype: z.enum(['float32', 'float16']),
    count: positiveInt,
    descriptionsPerTag: positiveInt,
  }),
  /** Expected outputs for fixed inputs (selftest.ts checks a runtime against them). */
  selftest: packPath.optional(),
  /**
   * Optional second decoder graph with the cross-attention as an output (export `--heatmaps`,
   * docs/model-pack.md): packs without it work as before and have no heat maps.
   */
  heatmaps: z
    .object({
      graph: packPath,
      /** [B, C, layers, T]: per tag and layer, attention over the image tokens, averaged over heads. */
      output: z.string().min(1),
      layers: positiveInt,
      /** [height, width] of the image-token grid (T = height·width + 1). */
      grid: z.tuple([positiveInt, positiveInt]),
      /** Index of the global (CLS) token among the T tokens; the grid follows row by row. */
      clsToken: z.literal(0).default(0),
    })
    .optional(),
  files: z.record(packPath, fileEntry),
});

export type PackManifest = z.infer<typeof packManifestSchema>;
export type PackFileEntry = z.infer<typeof fileEntry>;

/**
 * Whether a pack's weights are random: its `randomWeights`, else (packs exported before that
 * field) whether `createdBy.randomInit` names a random initialisation. Neither: real weights.
 */
export function hasRandomWeights(manifest: PackManifest): boolean {
  if (manifest.randomWeights !== undefined) return manifest.randomWeights;
  const init = manifest.createdBy?.randomInit;
  return typeof init === 'string' && init.length > 0;
}

/** Fixed file names of the three graphs (the contract with the export tool). */
export const GRAPH_FILES = {
  imageEncoder: 'image_encoder.onnx',
  tagDecoder: 'tag_decoder.onnx',
  textEncoder: 'text_encoder.onnx',
} as const;
export type GraphName = keyof typeof GRAPH_FILES;

/** Input and output names each graph must have. */
export const GRAPH_IO: Record<GraphName, { inputs: readonly string[]; outputs: readonly string[] }> = {
  imageEncoder: { inputs: ['pixel_values'], outputs: ['image_embeds'] },
  tagDecoder: {
    inputs: ['image_embeds', 'label_embeds', 'label_mask'],
    outputs: ['logits', 'description_weights'],
  },
  textEncoder: { inputs: ['input_ids'], outputs: ['text_embeds'] },
};

/** Inputs of the heat-map graph (as the decoder's) and the outputs the server reads of it. */
export const HEATMAP_GRAPH_IO = {
  inputs: GRAPH_IO.tagDecoder.inputs,
  outputs: (output: string): readonly string[] => ['logits', output],
} as const;
