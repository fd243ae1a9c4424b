import path from 'node:path';
import { z } from 'zod';
import type { DatabaseTimeouts } from './db/client.ts';
import { ENGINE_DEFAULTS } from './inference/index.ts';

/**
 * All configuration, read from the environment once at start-up and validated as a whole:
 * every bad variable is reported in one error, then the process exits before listening.
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bytes = int(1, 2 ** 40);
/** A per-tenant limit; 0 means none. */
const limit = int(0, 2 ** 31 - 1);
const optionalUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL')
  .optional();

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65535).default(4000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  DATABASE_URL: z
    .string()
    .refine((u) => /^postgres(ql)?:\/\//.test(u), 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATABASE_POOL_SIZE: int(1, 100).default(10),
  DATABASE_CONNECT_TIMEOUT_MS: int(100, 600_000).default(5_000),
  DATABASE_STATEMENT_TIMEOUT_MS: int(100, 3_600_000).default(5_000),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: int(100, 3_600_000).default(10_000),
  OMNITAG_DATA_DIR: z.string().min(1).default('.data'),
  OMNITAG_MIGRATE_ON_START: bool.default(true),
  OMNITAG_SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000),

  OMNITAG_PLATFORM_ADMIN_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  OMNITAG_AUTH_CACHE_MS: int(0, 600_000).default(5_000),

  OMNITAG_MODEL_PACK: z.string().min(1).default('packs/tiny'),
  OMNITAG_VERIFY_PACK: bool.default(false),
  OMNITAG_EXECUTION_PROVIDER: z.enum(['cpu', 'cuda', 'cuda-or-cpu']).default('cpu'),
  OMNITAG_CUDA_DEVICE: int(0, 64).default(0),
  OMNITAG_INTRA_OP_THREADS: int(0, 256).default(0),
  OMNITAG_INFERENCE_WORKERS: int(1, 64).default(ENGINE_DEFAULTS.workers),
  OMNITAG_INTAKE_WORKERS: int(0, 64).default(ENGINE_DEFAULTS.intakeWorkers),
  OMNITAG_WARMUP: bool.default(ENGINE_DEFAULTS.warmup),
  OMNITAG_MAX_BATCH: int(1, 256).default(ENGINE_DEFAULTS.maxBatchSize),
  OMNITAG_MAX_BATCH_WAIT_MS: int(0, 10_000).default(ENGINE_DEFAULTS.maxWaitMs),
  OMNITAG_MAX_QUEUE: int(1, 100_000).default(ENGINE_DEFAULTS.maxQueue),

  OMNITAG_MAX_IMAGE_BYTES: bytes.default(ENGINE_DEFAULTS.imageLimits.maxBytes),
  OMNITAG_MAX_IMAGE_PIXELS: int(1, 2 ** 31).default(ENGINE_DEFAULTS.imageLimits.maxPixels),
  OMNITAG_MAX_REQUEST_BYTES: bytes.default(64 * 1024 * 1024),
  OMNITAG_REQUEST_HEADERS_TIMEOUT_MS: int(100, 600_000).default(10_000),
  OMNITAG_REQUEST_BODY_TIMEOUT_MS: int(100, 3_600_000).default(60_000),
  OMNITAG_MAX_OPEN_UPLOADS: int(1, 100_000).default(64),
  OMNITAG_MAX_OPEN_UPLOADS_PER_KEY: int(1, 100_000).default(8),
  OMNITAG_MAX_IMAGES_PER_REQUEST: int(1, 1000).default(16),
  OMNITAG_MAX_TAGS_PER_REQUEST: int(1, 100_000).default(1000),
  OMNITAG_MAX_PAGE_SIZE: int(1, 10_000).default(500),
  OMNITAG_MAX_QUERY_DEPTH: int(1, 100).default(12),
  OMNITAG_MAX_QUERY_COST: int(1, 10_000_000).default(25_000),
  OMNITAG_ALLOW_URL_FETCH: bool.default(false),
  OMNITAG_URL_FETCH_TIMEOUT_MS: int(100, 120_000).default(10_000),
  OMNITAG_URL_FETCH_MAX_REDIRECTS: int(0, 10).default(3),

  OMNITAG_LLM_BASE_URL: optionalUrl,
  OMNITAG_LLM_API_KEY: z.string().optional(),
  OMNITAG_LLM_MODEL: z.string().min(1).default('gpt-4o-mini'),
  OMNITAG_LLM_TEMPERATURE: z.coerce.number().min(0).max(2).default(0.99),
  OMNITAG_LLM_CONCURRENCY: int(1, 64).default(4),
  OMNITAG_LLM_TIMEOUT_MS: int(100, 600_000).default(30_000),
  OMNITAG_LLM_MAX_RETRIES: int(0, 10).default(3),
  OMNITAG_DESCRIPTION_WORKER: bool.default(true),
  OMNITAG_JOB_LEASE_MS: int(1_000, 3_600_000).default(60_000),
  OMNITAG_LIBRARY_WORKER: bool.default(true),
  OMNITAG_LIBRARY_WORKER_CONCURRENCY: int(1, 64).default(2),
  OMNITAG_IMPORT_MAX_IMAGES: int(1, 1_000_000).default(10_000),
  OMNITAG_IMPORT_MAX_JOB_BYTES: bytes.default(512 * 1024 * 1024),
  OMNITAG_IMPORT_MAX_PENDING_BYTES: int(0, 2 ** 40).default(2 * 1024 * 1024 * 1024),
  OMNITAG_RETAG_BATCH: int(1, 10_000).default(256),

  OMNITAG_REDIS_URL: z
    .string()
    .refine((u) => /^rediss?:\/\//.test(u), 'must be a redis:// or rediss:// URL')
    .optional(),
  OMNITAG_LIMITS_STORE: z.enum(['memory', 'postgresql', 'redis']).optional(),
  OMNITAG_LIMITS_CACHE_MS: int(0, 600_000).default(5_000),
  OMNITAG_DEFAULT_REQUESTS_PER_SECOND: limit.default(50),
  OMNITAG_DEFAULT_IMAGES_PER_MINUTE: limit.default(1_200),
  OMNITAG_DEFAULT_IMAGES_PER_DAY: limit.default(200_000),
  OMNITAG_DEFAULT_MAX_VOCABULARIES: limit.default(100),
  OMNITAG_DEFAULT_MAX_TAGS: limit.default(50_000),
  OMNITAG_DEFAULT_LLM_GENERATIONS_PER_DAY: limit.default(10_000),
  OMNITAG_DEFAULT_MAX_STORED_IMAGES: limit.default(100_000),

  OMNITAG_LIBRARY_ENCODING: z.enum(['float16', 'float32']).default('float16'),
  OMNITAG_LIBRARY_THUMBNAIL_PX: int(0, 1024).default(128),
  OMNITAG_LIBRARY_THUMBNAIL_FORMAT: z.enum(['webp', 'jpeg']).default('webp'),
  OMNITAG_LIBRARY_SCORE_FLOOR: z.coerce.number().min(0).max(1).default(0.05),
  OMNITAG_LIBRARY_SEARCH_BATCH: int(1, 4096).default(64),

  OMNITAG_METRICS_PORT: int(0, 65535).optional(),
  OMNITAG_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),

  OMNITAG_EMBEDDING_CACHE_BYTES: bytes.default(256 * 1024 * 1024),
  OMNITAG_LABEL_BANK_CACHE_BYTES: bytes.default(2 * 1024 * 1024 * 1024),
  OMNITAG_LABEL_BANK_PRECISION: z.enum(['float32', 'float16']).default('float32'),
  OMNITAG_LABEL_BANK_SEGMENT_TAGS: int(1, 65_536).default(256),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  readonly env: Env['NODE_ENV'];
  readonly http: { readonly host: string; readonly port: number; readonly shutdownTimeoutMs: number };
  readonly logLevel: Env['LOG_LEVEL'];
  readonly database: {
    /** Unset: the embedded PostgreSQL under `dataDir` is used. */
    readonly url: string | undefined;
    readonly poolSize: number;
    readonly migrateOnStart: boolean;
    /** Every wait on the database is bounded; see README, "Failure behaviour". */
    readonly timeouts: DatabaseTimeouts;
  };
  readonly dataDir: string;
  readonly platformAdminKey: string | undefined;
  /** How long a verified key is trusted before the database is asked again (0: always ask). */
  readonly authCacheMs: number;
  readonly model: {
    readonly packDir: string;
    readonly verifyChecksums: boolean;
    readonly executionProvider: Env['OMNITAG_EXECUTION_PROVIDER'];
    readonly cudaDevice: number;
    /** 0 lets onnxruntime choose. */
    readonly intraOpThreads: number;
    readonly workers: number;
    /** Image decoding threads; 0: one per core. */
    readonly intakeWorkers: number;
    /** Run the shapes requests will use before reporting ready. */
    readonly warmup: boolean;
    readonly maxBatch: number;
    readonly maxBatchWaitMs: number;
    readonly maxQueue: number;
  };
  readonly limits: {
    readonly maxImageBytes: number;
    readonly maxImagePixels: number;
    readonly maxRequestBytes: number;
    /** How long a request's headers may take to arrive (Node's `headersTimeout`). */
    readonly requestHeadersTimeoutMs: number;
    /** How long a request's body may take to arrive, from its headers to its last byte. */
    readonly requestBodyTimeoutMs: number;
    /** Multipart requests (uploads) open at once, in all and per API key. */
    readonly maxOpenUploads: number;
    readonly maxOpenUploadsPerKey: number;
    readonly maxImagesPerRequest: number;
    readonly maxTagsPerRequest: number;
    readonly maxPageSize: number;
    readonly maxQueryDepth: number;
    readonly maxQueryCost: number;
  };
  readonly urlFetch: { readonly enabled: boolean; readonly timeoutMs: number; readonly maxRedirects: number };
  readonly llm: {
    /** Unset: descriptions come from the offline template generator. */
    readonly baseUrl: string | undefined;
    readonly apiKey: string | undefined;
    readonly model: string;
    readonly temperature: number;
    /** Requests in flight at once, across all tags and jobs of this process. */
    readonly concurrency: number;
    readonly timeoutMs: number;
    /** Retries of one request on 429, 5xx, timeouts, connection errors and malformed answers. */
    readonly maxRetries: number;
    /** Completion length limit (RAM++: 77). */
    readonly maxTokens: number;
    /** Consecutive failed requests that open the circuit breaker. */
    readonly breakerThreshold: number;
    /** How long an open breaker refuses calls before one trial. */
    readonly breakerCooldownMs: number;
    /** First back-off delay of a request (doubled per retry, with jitter). */
    readonly retryBaseMs: number;
    /** Longest wait before a retry; a longer Retry-After ends the attempts. */
    readonly retryMaxMs: number;
  };
  /**
   * Per-tenant limits: the defaults of tenants the platform admin gave none of their own, and
   * where the counters live (`memory`: this process only, the embedded default; `postgresql` or
   * `redis`: shared by every replica).
   */
  readonly tenantLimits: {
    readonly store: 'memory' | 'postgresql' | 'redis';
    readonly redisUrl: string | undefined;
    /** How long a tenant's limits are kept before they are read again (a change reaches every replica within it). */
    readonly cacheMs: number;
    readonly defaults: TenantLimitValues;
  };
  /** Prometheus metrics: on a port of their own, and/or at /metrics of the API port behind a bearer token. */
  readonly metrics: { readonly port: number | undefined; readonly token: string | undefined };
  /** Whether this process runs description jobs (API-only replicas can leave them to others). */
  readonly descriptionWorker: boolean;
  readonly cache: { readonly embeddingBytes: number };
  /** The image library (src/library): how stored images are kept and searched. */
  readonly library: {
    /** Stored encodings' values: float16 (half the bytes; see docs/library.md for the drift) or float32 (exact). */
    readonly encoding: 'float16' | 'float32';
    /** Thumbnails' longest side and format; null: no thumbnails. */
    readonly thumbnail: { readonly maxEdge: number; readonly format: 'webp' | 'jpeg' } | null;
    /** Tag scores below this probability are not kept (passed tags always are): `minScore` is exact down to it. */
    readonly scoreFloor: number;
    /** Stored encodings decoded per engine call by `searchImages`. */
    readonly searchBatch: number;
  };
  /**
   * Compiled vocabularies: the pack's built-in segment is shared by all of them; what each owns
   * (its own segments) is kept in an LRU of `cacheBytes`, stored at `precision`, in segments of
   * at most `segmentTags` tags (an edit rebuilds only its tag's segment).
   */
  readonly labelBanks: { readonly cacheBytes: number; readonly precision: 'float32' | 'float16'; readonly segmentTags: number };
  /**
   * Library jobs (imports, re-tagging): whether this process runs them, how many items at once,
   * an import's size (images, staged bytes), the staged bytes a tenant's unfinished imports may
   * hold together (0: no limit), and the stored images one re-tagging step scores. Claims,
   * leases and polling are the description worker's (`vocab.worker`).
   */
  readonly libraryJobs: {
    readonly enabled: boolean;
    readonly concurrency: number;
    readonly maxImagesPerJob: number;
    readonly maxJobBytes: number;
    readonly maxPendingBytes: number;
    readonly retagBatch: number;
  };
  /** Vocabularies: internal values, not read from the environment. */
  readonly vocab: {
    /** Descriptions per tag made by the template generator and asked of the LLM (RAM++: 51, "a photo of a {tag}." + 5 prompts × 10 answers). */
    readonly descriptionsPerTag: number;
    /** Stored descriptions per tag. */
    readonly maxDescriptionsPerTag: number;
    /** Threshold of tags that are not built-in and have no override (RAM++'s open-set value). */
    readonly defaultThreshold: number;
    readonly worker: {
      /** Items processed at once by this process. */
      readonly concurrency: number;
      /** How often an idle worker looks for work (other replicas' jobs, retries that came due). */
      readonly pollIntervalMs: number;
      /** A claim lasts this long unless renewed; a dead worker's items are claimable after it (OMNITAG_JOB_LEASE_MS). */
      readonly leaseMs: number;
      /** How often a running item's lease is renewed (well under `leaseMs`). */
      readonly renewEveryMs: number;
      /** Attempts per item before it fails for good (retryable errors only). */
      readonly maxAttempts: number;
      /** First retry delay of an item (doubled per attempt) when the error gives none. */
      readonly retryBaseMs: number;
      /** Longest retry delay of an item. */
      readonly retryMaxMs: number;
    };
  };
}

/** Every per-tenant limit; 0 means none. */
export interface TenantLimitValues {
  /** Requests per second, and the largest burst (a token bucket of this size, refilled over a second). */
  readonly requestsPerSecond: number;
  readonly imagesPerMinute: number;
  readonly imagesPerDay: number;
  readonly maxVocabularies: number;
  readonly maxTags: number;
  /** Tags sent to the LLM for descriptions per day. */
  readonly llmGenerationsPerDay: number;
  /** Images kept in the tenant's library. */
  readonly maxStoredImages: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const deepFreeze = <T extends object>(o: T): T => {
  for (const v of Object.values(o)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(o);
};

/** Parses `env` (default `process.env`); throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  // Empty strings mean "unset", as they do in most shells and compose files.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  // Shared counters are asked for (several replicas): a single process keeps them in memory.
  const limitsStore = e.OMNITAG_LIMITS_STORE ?? (e.OMNITAG_REDIS_URL ? 'redis' : 'memory');
  const problems: string[] = [];
  if (limitsStore === 'redis' && !e.OMNITAG_REDIS_URL) problems.push('OMNITAG_LIMITS_STORE: redis needs OMNITAG_REDIS_URL');
  // the embedded database is one process's own: its counters may as well be in memory
  if (limitsStore === 'postgresql' && !e.DATABASE_URL) problems.push('OMNITAG_LIMITS_STORE: postgresql needs DATABASE_URL');
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze({
    env: e.NODE_ENV,
    http: { host: e.HOST, port: e.PORT, shutdownTimeoutMs: e.OMNITAG_SHUTDOWN_TIMEOUT_MS },
    logLevel: e.LOG_LEVEL,
    database: {
      url: e.DATABASE_URL,
      poolSize: e.DATABASE_POOL_SIZE,
      migrateOnStart: e.OMNITAG_MIGRATE_ON_START,
      timeouts: {
        connectMs: e.DATABASE_CONNECT_TIMEOUT_MS,
        statementMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
        idleInTransactionMs: e.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
      },
    },
    dataDir: path.resolve(cwd, e.OMNITAG_DATA_DIR),
    platformAdminKey: e.OMNITAG_PLATFORM_ADMIN_KEY,
    authCacheMs: e.OMNITAG_AUTH_CACHE_MS,
    model: {
      packDir: path.resolve(cwd, e.OMNITAG_MODEL_PACK),
      verifyChecksums: e.OMNITAG_VERIFY_PACK,
      executionProvider: e.OMNITAG_EXECUTION_PROVIDER,
      cudaDevice: e.OMNITAG_CUDA_DEVICE,
      intraOpThreads: e.OMNITAG_INTRA_OP_THREADS,
      workers: e.OMNITAG_INFERENCE_WORKERS,
      intakeWorkers: e.OMNITAG_INTAKE_WORKERS,
      warmup: e.OMNITAG_WARMUP,
      maxBatch: e.OMNITAG_MAX_BATCH,
      maxBatchWaitMs: e.OMNITAG_MAX_BATCH_WAIT_MS,
      maxQueue: e.OMNITAG_MAX_QUEUE,
    },
    limits: {
      maxImageBytes: e.OMNITAG_MAX_IMAGE_BYTES,
      maxImagePixels: e.OMNITAG_MAX_IMAGE_PIXELS,
      maxRequestBytes: e.OMNITAG_MAX_REQUEST_BYTES,
      requestHeadersTimeoutMs: e.OMNITAG_REQUEST_HEADERS_TIMEOUT_MS,
      requestBodyTimeoutMs: e.OMNITAG_REQUEST_BODY_TIMEOUT_MS,
      maxOpenUploads: e.OMNITAG_MAX_OPEN_UPLOADS,
      maxOpenUploadsPerKey: e.OMNITAG_MAX_OPEN_UPLOADS_PER_KEY,
      maxImagesPerRequest: e.OMNITAG_MAX_IMAGES_PER_REQUEST,
      maxTagsPerRequest: e.OMNITAG_MAX_TAGS_PER_REQUEST,
      maxPageSize: e.OMNITAG_MAX_PAGE_SIZE,
      maxQueryDepth: e.OMNITAG_MAX_QUERY_DEPTH,
      maxQueryCost: e.OMNITAG_MAX_QUERY_COST,
    },
    urlFetch: {
      enabled: e.OMNITAG_ALLOW_URL_FETCH,
      timeoutMs: e.OMNITAG_URL_FETCH_TIMEOUT_MS,
      maxRedirects: e.OMNITAG_URL_FETCH_MAX_REDIRECTS,
    },
    llm: {
      baseUrl: e.OMNITAG_LLM_BASE_URL,
      apiKey: e.OMNITAG_LLM_API_KEY,
      model: e.OMNITAG_LLM_MODEL,
      temperature: e.OMNITAG_LLM_TEMPERATURE,
      concurrency: e.OMNITAG_LLM_CONCURRENCY,
      timeoutMs: e.OMNITAG_LLM_TIMEOUT_MS,
      maxRetries: e.OMNITAG_LLM_MAX_RETRIES,
      maxTokens: 77,
      breakerThreshold: 5,
      breakerCooldownMs: 30_000,
      retryBaseMs: 500,
      retryMaxMs: 30_000,
    },
    tenantLimits: {
      store: limitsStore,
      redisUrl: e.OMNITAG_REDIS_URL,
      cacheMs: e.OMNITAG_LIMITS_CACHE_MS,
      defaults: {
        requestsPerSecond: e.OMNITAG_DEFAULT_REQUESTS_PER_SECOND,
        imagesPerMinute: e.OMNITAG_DEFAULT_IMAGES_PER_MINUTE,
        imagesPerDay: e.OMNITAG_DEFAULT_IMAGES_PER_DAY,
        maxVocabularies: e.OMNITAG_DEFAULT_MAX_VOCABULARIES,
        maxTags: e.OMNITAG_DEFAULT_MAX_TAGS,
        llmGenerationsPerDay: e.OMNITAG_DEFAULT_LLM_GENERATIONS_PER_DAY,
        maxStoredImages: e.OMNITAG_DEFAULT_MAX_STORED_IMAGES,
      },
    },
    metrics: { port: e.OMNITAG_METRICS_PORT, token: e.OMNITAG_METRICS_TOKEN },
    descriptionWorker: e.OMNITAG_DESCRIPTION_WORKER,
    libraryJobs: {
      enabled: e.OMNITAG_LIBRARY_WORKER,
      concurrency: e.OMNITAG_LIBRARY_WORKER_CONCURRENCY,
      maxImagesPerJob: e.OMNITAG_IMPORT_MAX_IMAGES,
      maxJobBytes: e.OMNITAG_IMPORT_MAX_JOB_BYTES,
      maxPendingBytes: e.OMNITAG_IMPORT_MAX_PENDING_BYTES,
      retagBatch: e.OMNITAG_RETAG_BATCH,
    },
    cache: { embeddingBytes: e.OMNITAG_EMBEDDING_CACHE_BYTES },
    library: {
      encoding: e.OMNITAG_LIBRARY_ENCODING,
      thumbnail: e.OMNITAG_LIBRARY_THUMBNAIL_PX === 0 ? null : { maxEdge: e.OMNITAG_LIBRARY_THUMBNAIL_PX, format: e.OMNITAG_LIBRARY_THUMBNAIL_FORMAT },
      scoreFloor: e.OMNITAG_LIBRARY_SCORE_FLOOR,
      searchBatch: e.OMNITAG_LIBRARY_SEARCH_BATCH,
    },
    labelBanks: { cacheBytes: e.OMNITAG_LABEL_BANK_CACHE_BYTES, precision: e.OMNITAG_LABEL_BANK_PRECISION, segmentTags: e.OMNITAG_LABEL_BANK_SEGMENT_TAGS },
    vocab: {
      descriptionsPerTag: 51,
      maxDescriptionsPerTag: 256,
      defaultThreshold: 0.5,
      worker: {
        concurrency: 2,
        pollIntervalMs: 1_000,
        leaseMs: e.OMNITAG_JOB_LEASE_MS,
        renewEveryMs: Math.floor(e.OMNITAG_JOB_LEASE_MS / 3),
        maxAttempts: 5,
        retryBaseMs: 5_000,
        retryMaxMs: 600_000,
      },
    },
  });
}
