/**
 * Tenants' vocabularies: tags, their descriptions (LLM, templates, hand-written or the
 * pack's built-in ones), the text-embedding cache, description jobs and compiled label banks.
 * The composition root builds everything with `createVocabularyServices` and calls `start()`
 * (the description worker) and `stop()`.
 */
import type pg from 'pg';
import type { PrismaClient } from '../db/client.ts';
import type { InferenceEngine } from '../inference/index.ts';
import type { Logger } from '../core/log.ts';
import type { VocabContext, VocabSettings } from './context.ts';
import { DescriptionService } from './use-cases/descriptions.ts';
import { EmbeddingCache } from './banks/embedding-cache.ts';
import { DEFAULT_DESCRIPTIONS_PER_TAG, TemplateGenerator, type DescriptionGenerator } from './generation/generators.ts';
import { DescriptionJobService, DescriptionWorker, type DescriptionWorkerOptions } from './generation/jobs.ts';
import { LabelBankService } from './banks/label-banks.ts';
import { LlmDescriptionGenerator } from './generation/llm.ts';
import { TagService } from './use-cases/tags.ts';
import { VocabularyService } from './use-cases/vocabularies.ts';

export type { DescriptionView, ItemResult, TagView } from './context.ts';
export type { AddTagResult, AddTagsResult, TagInput, TagListOptions, UpdateTagInput } from './use-cases/tags.ts';
export type { CreateJobResult, DescriptionJobItemView, DescriptionJobView, DescriptionWorkerOptions } from './generation/jobs.ts';
export type { LabelBankStats, SnapshotDescription, SnapshotTag, VocabularySnapshot } from './banks/label-banks.ts';
export type { Vocabulary, VocabularyStats } from './use-cases/vocabularies.ts';
export type { DescriptionGenerator, GeneratedDescription, GenerationResult } from './generation/generators.ts';
export { DescriptionService, DescriptionJobService, DescriptionWorker, EmbeddingCache, LabelBankService, TagService, VocabularyService };
export { LlmDescriptionGenerator, TemplateGenerator };

export interface VocabularyConfig {
  /** Config.llm: no `baseUrl` → descriptions come from the template generator. */
  readonly llm: {
    readonly baseUrl: string | undefined;
    readonly apiKey?: string | undefined;
    readonly model: string;
    readonly temperature: number;
    readonly concurrency: number;
    readonly timeoutMs: number;
    readonly maxRetries: number;
    readonly breakerThreshold?: number;
    readonly breakerCooldownMs?: number;
    readonly retryBaseMs?: number;
    readonly retryMaxMs?: number;
  };
  /** Config.cache: bytes of the in-memory embedding LRU and of compiled label banks. */
  readonly cache: { readonly embeddingBytes: number; readonly labelBankBytes: number };
  /** Config.limits.maxTagsPerRequest (default 1000). */
  readonly maxTagsPerRequest?: number;
  /** Default 51 (RAM++). */
  readonly descriptionsPerTag?: number;
  /** Default 256. */
  readonly maxDescriptionsPerTag?: number;
  /** Threshold of open-set tags without an override (default 0.5, RAM++'s open-set value). */
  readonly defaultThreshold?: number;
  readonly worker?: DescriptionWorkerOptions & { readonly enabled?: boolean };
}

export interface VocabularyServicesOptions {
  prisma: PrismaClient;
  /** The pg pool under Prisma (one connection on the embedded database). */
  pool: pg.Pool;
  engine: InferenceEngine;
  config: VocabularyConfig;
  log: Logger;
  /** Replaces the LLM generator (tests, other providers). */
  generator?: DescriptionGenerator;
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
  /** Starts the description worker (unless `config.worker.enabled` is false). */
  start(): void;
  /** Stops the worker (handing its claimed items back) and finishes writing new embeddings. */
  stop(): Promise<void>;
}

export function createVocabularyServices(options: VocabularyServicesOptions): VocabularyServices {
  const { prisma, pool, engine, config, log } = options;
  const settings: VocabSettings = {
    descriptionsPerTag: config.descriptionsPerTag ?? DEFAULT_DESCRIPTIONS_PER_TAG,
    defaultThreshold: config.defaultThreshold ?? 0.5,
    maxTagsPerRequest: config.maxTagsPerRequest ?? 1000,
    maxDescriptionsPerTag: config.maxDescriptionsPerTag ?? 256,
  };
  const embeddings = new EmbeddingCache({ pool, engine, maxBytes: config.cache.embeddingBytes, log });
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
  const wake = { worker: undefined as DescriptionWorker | undefined };
  const ctx: VocabContext = {
    prisma,
    pool,
    engine,
    log,
    settings,
    embeddings,
    llm,
    template: new TemplateGenerator(),
    nudgeWorker: () => wake.worker?.nudge(),
  };
  const labelBanks = new LabelBankService({
    pool,
    engine,
    embeddings,
    maxBytes: config.cache.labelBankBytes,
    defaultThreshold: settings.defaultThreshold,
    log,
  });
  // Revisions make stale banks harmless; a deleted vocabulary's bank is dropped at once.
  const vocabularies = new VocabularyService(ctx, (id) => labelBanks.evict(id));
  const worker = (wake.worker = new DescriptionWorker(ctx, config.worker));
  const enabled = config.worker?.enabled ?? true;
  return {
    vocabularies,
    tags: new TagService(ctx),
    descriptions: new DescriptionService(ctx),
    jobs: new DescriptionJobService(ctx),
    labelBanks,
    embeddings,
    worker,
    descriptionGenerator: (llm ?? ctx.template).name,
    start: () => {
      if (enabled) worker.start();
    },
    stop: async () => {
      await worker.stop();
      await embeddings.flush();
    },
  };
}
