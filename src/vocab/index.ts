/**
 * Tenants' vocabularies: tags, their descriptions (LLM, templates, hand-written or the
 * pack's built-in ones), the text-embedding cache, description jobs and compiled label banks.
 * The composition root builds everything with `createVocabularyServices` and calls `start()`
 * (the description worker) and `stop()`.
 */
import type pg from 'pg';
import type { Config } from '../config.ts';
import type { PrismaClient } from '../db/client.ts';
import type { InferenceEngine } from '../inference/index.ts';
import type { Logger } from '../core/log.ts';
import type { VocabContext, VocabQuotas } from './context.ts';
import { DescriptionService } from './use-cases/descriptions.ts';
import { EmbeddingCache } from './banks/embedding-cache.ts';
import { TemplateGenerator, type DescriptionGenerator } from './generation/generators.ts';
import { DescriptionJobService } from './generation/job-service.ts';
import { DescriptionWorker } from './generation/worker.ts';
import { LabelBankService } from './banks/label-banks.ts';
import { LlmDescriptionGenerator } from './generation/llm.ts';
import { EmbeddingTable } from './repository/embeddings.ts';
import { SnapshotReader } from './repository/snapshots.ts';
import { VocabStore, type RevisionListener } from './repository/store.ts';
import { TagService } from './use-cases/tags.ts';
import { VocabularyService } from './use-cases/vocabularies.ts';

export type { DescriptionView, ItemResult, TagView } from './views.ts';
export type { VocabQuotas } from './context.ts';
export type { RevisionChange, RevisionListener } from './repository/store.ts';
export type { AddTagResult, AddTagsResult, SetThresholdsResult, TagInput, TagListOptions, TagThresholdInput, UpdateTagInput } from './use-cases/tags.ts';
export type { CreateJobResult, DescriptionJobItemView, DescriptionJobView } from './generation/job-service.ts';
export type { LabelBankStats } from './banks/label-banks.ts';
export type { SnapshotDescription, SnapshotTag, VocabularySnapshot } from './banks/snapshot.ts';
export type { Vocabulary, VocabularyStats } from './use-cases/vocabularies.ts';
export type { DescriptionGenerator, GeneratedDescription, GenerationResult } from './generation/generators.ts';
export { DescriptionService, DescriptionJobService, DescriptionWorker, EmbeddingCache, LabelBankService, TagService, VocabularyService };
export { LlmDescriptionGenerator, TemplateGenerator };
export { checkTagName, nameKey, normalizeText } from './use-cases/names.ts';

/** The parts of the configuration vocabularies read. */
export type VocabularyConfig = Pick<Config, 'llm' | 'cache' | 'labelBanks' | 'vocab' | 'descriptionWorker'> & {
  readonly limits: Pick<Config['limits'], 'maxTagsPerRequest'>;
};

export interface VocabularyServicesOptions {
  prisma: PrismaClient;
  /** The pg pool under Prisma (one connection on the embedded database). */
  pool: pg.Pool;
  engine: InferenceEngine;
  config: VocabularyConfig;
  log: Logger;
  /** Replaces the LLM generator (tests, other providers). */
  generator?: DescriptionGenerator;
  /** The tenants' quotas of vocabularies, tags and LLM generations. */
  quotas?: VocabQuotas;
}

export interface VocabularyServices {
  readonly vocabularies: VocabularyService;
  readonly tags: TagService;
  readonly descriptions: DescriptionService;
  readonly jobs: DescriptionJobService;
  readonly labelBanks: LabelBankService;
  readonly embeddings: EmbeddingCache;
  readonly worker: DescriptionWorker;
  /** `llm:<model>` or `template`: where new descriptions come from. */
  readonly descriptionGenerator: string;
  /** That generator: the LLM's when one is configured, else the templates. */
  readonly generator: DescriptionGenerator;
  /** Requests sent to the LLM endpoint so far, their retries and failures; undefined without an LLM. */
  llmStats(): { requests: number; retries: number; failures: number } | undefined;
  /**
   * Tells `listener` of each new vocabulary revision once its edit has committed (the port
   * through which the image library re-tags stored images without this folder knowing it).
   */
  onRevision(listener: RevisionListener): void;
  /** Starts the description worker (unless `config.descriptionWorker` is false). */
  start(): void;
  /** Stops the worker (handing its claimed items back) and finishes writing new embeddings. */
  stop(): Promise<void>;
}

export function createVocabularyServices(options: VocabularyServicesOptions): VocabularyServices {
  const { prisma, pool, engine, config, log } = options;
  const { worker: workerConfig, ...vocab } = config.vocab;
  const store = new VocabStore(prisma);
  const embeddings = new EmbeddingCache({ table: new EmbeddingTable(pool), engine, maxBytes: config.cache.embeddingBytes, log });
  const llm =
    options.generator ??
    (config.llm.baseUrl
      ? new LlmDescriptionGenerator({
          ...config.llm,
          baseUrl: config.llm.baseUrl,
          contextTokens: engine.info.textContext,
          // the engine's own tokenizer: answers are cut to the encoder's context exactly
          countTokens: (texts) => engine.countTokens(texts),
          log: log.child({ component: 'llm' }),
        })
      : undefined);
  const template = new TemplateGenerator();
  const worker = new DescriptionWorker({ store, embeddings, llm, template, log }, workerConfig);
  const ctx: VocabContext = {
    store,
    engine,
    log,
    settings: { ...vocab, maxTagsPerRequest: config.limits.maxTagsPerRequest },
    llm,
    template,
    quotas: options.quotas,
    nudgeWorker: () => worker.nudge(),
  };
  const labelBanks = new LabelBankService({
    snapshots: new SnapshotReader(pool),
    engine,
    embeddings,
    maxBytes: config.labelBanks.cacheBytes,
    segmentTags: config.labelBanks.segmentTags,
    precision: config.labelBanks.precision,
    defaultThreshold: vocab.defaultThreshold,
    log,
  });
  // Revisions make stale banks harmless; a deleted vocabulary's bank is dropped at once.
  const vocabularies = new VocabularyService(ctx, (id) => labelBanks.evict(id));
  return {
    vocabularies,
    tags: new TagService(ctx),
    descriptions: new DescriptionService(ctx),
    jobs: new DescriptionJobService(ctx),
    labelBanks,
    embeddings,
    worker,
    descriptionGenerator: (llm ?? template).name,
    generator: llm ?? template,
    llmStats: () => (llm && 'stats' in llm && typeof llm.stats === 'function' ? (llm.stats() as { requests: number; retries: number; failures: number }) : undefined),
    onRevision: (listener) => store.onRevision(listener),
    start: () => {
      if (config.descriptionWorker) worker.start();
    },
    stop: async () => {
      await worker.stop();
      await embeddings.flush();
    },
  };
}
