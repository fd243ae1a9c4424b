/**
 * The face of src/inference: everything the rest of the application (API, tagging, vocab,
 * CLI, benchmarks) may use. The sub-packages (pack, runtime, image, text, scoring) are
 * internals; eslint refuses imports of them from outside src/inference.
 */

// The engine: the interface, its value types and the local implementation on worker threads.
export {
  isImageEmbeddings,
  type Admission,
  type EngineInfo,
  type EngineStats,
  type HeatmapGrid,
  type HeatmapValues,
  type ImageEmbeddings,
  type ImageInput,
  type ImagePixels,
  type ImageSource,
  type InferenceEngine,
  type RequestOptions,
  type ScoreOptions,
  type ScoreTimings,
  type ScoredImage,
  type TagHeatmap,
  type TextEmbeddings,
} from './runtime/engine.ts';
export { createLocalInferenceEngine, type ImagePreprocessor, type LocalEngineOptions, type LocalInferenceEngine } from './runtime/local-engine.ts';
export type { EngineObserver } from './runtime/engine-options.ts';
export { ENGINE_DEFAULTS } from './runtime/engine-options.ts';
export type { ExecutionProvider, Logger, ProviderPreference } from './runtime/sessions.ts';
export type { ImageLimits } from './image/limits.ts';
export type { ResizeMode } from './image/preprocess.ts';

// Label banks (the caller's vocabulary, as the decoder reads it) and what scoring returns.
export {
  buildLabelBank,
  buildSegment,
  composeLabelBank,
  descriptionCount,
  evictedBank,
  holdSegments,
  isEvictedBankError,
  segmentBytes,
  SegmentBuilder,
  segmentRowEmbeddings,
  singleSegmentBank,
  tagEmbeddings,
  type BankSegment,
  type LabelBank,
  type LabelBankTag,
  type SegmentLifetime,
  type SegmentPrecision,
  type TagDescriptions,
} from './scoring/label-bank.ts';
export { SegmentArena, type ArenaStats } from './scoring/segment-arena.ts';
export {
  descriptionWeights,
  passedTags,
  rankTags,
  topDescriptions,
  type DescriptionWeight,
  type RankedTag,
  type RankOptions,
  type TagScores,
} from './scoring/scores.ts';

// Text clean-up the tokenizer applies, for callers that store texts: HTML character references
// decoded as Python's html.unescape does (named, numeric, legacy names without ';').
export { pyHtmlUnescape as decodeHtmlEntities } from './text/clean.ts';

// IEEE half-precision conversions (bit patterns in Uint16Array), for callers that store vectors compactly.
export { float16ToFloat32, float32ToFloat16 } from './pack/float16.ts';

// The pack's own vocabulary and its self-test report.
export type { BuiltinTag, BuiltinVocabulary } from './pack/builtin-vocabulary.ts';
export type { SelftestCheck, SelftestReport } from './pack/selftest.ts';
