import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';
import { openDatabase, type Database } from './db/client.ts';
import { applyMigrations, pendingMigrations } from './db/migrate.ts';
import { openDatabaseServer, type DatabaseServer } from './db/server.ts';
import { createHttpServer, type HttpServer } from './api/server.ts';
import { createMetricsServer, type MetricsServer } from './api/metrics-endpoint.ts';
import { Metrics } from './metrics/index.ts';
import pg from 'pg';
import { Counters, LimitsService } from './limits/index.ts';
import { createLocalInferenceEngine, ENGINE_DEFAULTS, type LocalInferenceEngine } from './inference/index.ts';
import { TaggingService } from './tagging/tagging-service.ts';
import { UrlFetcher } from './tagging/url-fetcher.ts';
import { readImageInput, type ImageInputValue } from './tagging/image-input.ts';
import { UsageRecorder } from './tagging/usage-recorder.ts';
import { UsageReport } from './tagging/usage-report.ts';
import { createVocabularyServices, type VocabularyServices } from './vocab/index.ts';
import { createLibraryJobs, FeedbackService, ImageLibrary, ImageRetagger, ImageSearch, type LibraryJobs } from './library/index.ts';
import { ApiKeyService } from './tenancy/api-key-service.ts';
import type { Logger } from './core/log.ts';
import { DEMO_MODEL_WARNING } from './core/demo-model.ts';
import type { HealthService, Services } from './api/services.ts';
import { Authenticator } from './tenancy/authenticator.ts';
import { TenantService } from './tenancy/tenants.ts';

const VERSION: string = JSON.parse(
  fs.readFileSync(path.resolve(import.meta.dirname, '..', 'package.json'), 'utf8'),
).version;

/** What a running app holds, in start order; released in reverse. */
interface Resources {
  readonly dbServer: DatabaseServer;
  readonly db: Database;
  readonly engine: LocalInferenceEngine;
  readonly counters: Counters;
  readonly vocab: VocabularyServices;
  readonly libraryJobs: LibraryJobs<ImageInputValue>;
  readonly usage: UsageRecorder;
  readonly http: HttpServer;
  /** Serves /metrics on OMNITAG_METRICS_PORT, when set. */
  readonly metricsServer: MetricsServer;
}

/** Resources acquired so far during start(): a failed start releases exactly these. */
type Acquired = { -readonly [K in keyof Resources]?: Resources[K] };

interface Running extends Omit<Resources, 'metricsServer'> {
  readonly metricsServer: MetricsServer | undefined;
  readonly services: Services;
  readonly address: { host: string; port: number };
  readonly metricsAddress: { host: string; port: number } | undefined;
}

/** Each phase carries only what exists in it (after start() fails, nothing is held any more). */
type Lifecycle =
  | { readonly phase: 'created' }
  | { readonly phase: 'starting'; readonly started: Promise<void> }
  | ({ readonly phase: 'running' } & Running)
  | { readonly phase: 'stopping'; readonly stopped: Promise<void> }
  | { readonly phase: 'stopped' }
  | { readonly phase: 'failed'; readonly error: unknown };

/**
 * The composition root and the one lifecycle owner: it builds config → database → services →
 * GraphQL → HTTP in that order, and stops them in reverse (HTTP drains first, the database
 * closes last).
 */
export class App {
  private lifecycle: Lifecycle = { phase: 'created' };

  constructor(
    readonly config: Config,
    private readonly log: Logger,
  ) {}

  /** Built during start(); exposed for tests and tools that run inside the process. */
  get services(): Services {
    return this.running().services;
  }

  /** The database client, for tests and tools that run inside the process. */
  get db(): Database {
    return this.running().db;
  }

  get address(): { host: string; port: number } {
    return this.running().address;
  }

  get url(): string {
    const { address } = this.running();
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    return `http://${host}:${address.port}`;
  }

  /** The metrics server's own address (OMNITAG_METRICS_PORT), when it has one. */
  get metricsUrl(): string | undefined {
    const a = this.running().metricsAddress;
    return a && `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/metrics`;
  }

  private running(): Running {
    if (this.lifecycle.phase !== 'running') throw new Error(`the app is ${this.lifecycle.phase}, not running`);
    return this.lifecycle;
  }

  async start(): Promise<void> {
    if (this.lifecycle.phase !== 'created') throw new Error(`cannot start an app that is ${this.lifecycle.phase}`);
    // `starting` runs until its first await before the phase is set; it does not read the phase.
    const started = this.starting();
    this.lifecycle = { phase: 'starting', started };
    return started;
  }

  private async starting(): Promise<void> {
    const acquired: Acquired = {};
    try {
      const { config, log } = this;
      const dbServer = (acquired.dbServer = await openDatabaseServer(config));
      log.info({ embedded: dbServer.embedded }, 'database server ready');
      if (config.database.migrateOnStart) {
        const applied = await applyMigrations(dbServer.url);
        if (applied.length) log.info({ applied }, 'migrations applied');
        await dbServer.whenIdle();
      }
      const db = (acquired.db = openDatabase(dbServer.url, dbServer.maxConnections, log, {
        timeouts: config.database.timeouts,
        // the embedded server takes one connection: a new one waits until the last one is gone
        ...(dbServer.embedded ? { beforeConnect: () => dbServer.whenIdle() } : {}),
      }));
      if (!(await db.ping(10_000))) throw new Error('the database does not answer');
      const pending = await pendingMigrations(db);
      if (pending.length) {
        throw new Error(`the database lacks migrations ${pending.join(', ')}: run \`npm run db:migrate\``);
      }
      const metrics = config.metrics.port !== undefined || config.metrics.token ? new Metrics() : undefined;
      const engine = (acquired.engine = await this.startEngine(metrics));
      const counters = (acquired.counters = this.openCounters(dbServer.url));
      await counters.start();
      const { services, usage, libraryJobs } = await this.buildServices(db, dbServer.embedded, engine, counters, metrics, acquired);
      const vocab = (acquired.vocab = services.vocab);
      vocab.start();
      libraryJobs.start();
      metrics?.watch({
        engine: () => engine.stats(),
        labelBanks: () => vocab.labelBanks.stats(),
        embeddings: () => vocab.embeddings.stats(),
        llm: () => vocab.llmStats(),
        jobItemsByState: () => vocab.jobs.itemsByState(),
        libraryItemsByState: () => libraryJobs.service.itemsByState(),
        databasePool: () => ({ total: db.pool.totalCount, idle: db.pool.idleCount, waiting: db.pool.waitingCount, max: dbServer.maxConnections }),
      });
      const http = (acquired.http = await createHttpServer({
        services,
        log,
        limits: config.limits,
        shutdownTimeoutMs: config.http.shutdownTimeoutMs,
        ...(metrics
          ? {
              metrics: {
                token: config.metrics.token,
                contentType: metrics.contentType,
                render: () => metrics.render(),
                observeOperation: (operation: string, outcome: string, seconds: number) => metrics.observeOperation(operation, outcome, seconds),
              },
            }
          : {}),
      }));
      const address = await http.listen(config.http.host, config.http.port);
      let metricsAddress: { host: string; port: number } | undefined;
      const metricsServer = metrics && config.metrics.port !== undefined ? (acquired.metricsServer = createMetricsServer(metrics)) : undefined;
      if (metricsServer) {
        metricsAddress = await metricsServer.listen(config.http.host, config.metrics.port!);
        log.info({ url: `http://${metricsAddress.host}:${metricsAddress.port}/metrics` }, 'metrics are served');
      }
      this.lifecycle = { phase: 'running', dbServer, db, engine, counters, vocab, libraryJobs, usage, http, metricsServer, services, address, metricsAddress };
      log.info({ url: `${this.url}/graphql` }, 'Omnitag is listening');
    } catch (error) {
      await this.release(acquired);
      this.lifecycle = { phase: 'failed', error };
      throw error;
    }
  }

  /** Opens the model pack and starts the inference workers; a broken pack fails start-up here. */
  private async startEngine(metrics: Metrics | undefined): Promise<LocalInferenceEngine> {
    const { model, limits } = this.config;
    const engine = await createLocalInferenceEngine({
      packDir: model.packDir,
      verifyChecksums: model.verifyChecksums,
      provider: model.executionProvider,
      cudaDeviceId: model.cudaDevice,
      workers: model.workers,
      intakeWorkers: model.intakeWorkers,
      warmup: model.warmup,
      intraOpThreads: model.intraOpThreads,
      maxBatchSize: model.maxBatch,
      maxWaitMs: model.maxBatchWaitMs,
      maxQueue: model.maxQueue,
      // Texts are batched too, two batches in flight; both must fit the queue that feeds them.
      textBatchSize: Math.max(1, Math.min(ENGINE_DEFAULTS.textBatchSize, Math.floor(model.maxQueue / 2))),
      // The side limit has no setting of its own: the engine's default (20,000 px).
      imageLimits: { ...ENGINE_DEFAULTS.imageLimits, maxBytes: limits.maxImageBytes, maxPixels: limits.maxImagePixels },
      logger: this.log.child({ component: 'inference' }),
      ...(metrics ? { observer: metrics.engineObserver } : {}),
    });
    const info = await engine.start();
    this.log.info(
      { pack: info.packName, precision: info.precision, provider: info.provider, workers: info.workers, startMs: info.startup?.ms, warmupMs: info.startup?.warmupMs, warmedShapes: info.startup?.warmed.length },
      'inference engine ready',
    );
    if (info.randomWeights) this.log.warn({ pack: info.packName, code: DEMO_MODEL_WARNING.code }, DEMO_MODEL_WARNING.message);
    return engine;
  }

  /** Where the per-tenant counters live; PostgreSQL's get a small pool of their own, apart from the requests'. */
  private openCounters(databaseUrl: string): Counters {
    const { store, redisUrl } = this.config.tenantLimits;
    if (store === 'redis') return new Counters({ kind: 'redis', url: redisUrl! });
    if (store === 'postgresql') {
      // Short bounds: while PostgreSQL does not answer, the in-memory fallback counts instead of
      // holding requests for the database's own timeouts.
      const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, connectionTimeoutMillis: Math.min(1_000, this.config.database.timeouts.connectMs), query_timeout: 1_000, keepAlive: true });
      pool.on('error', (err) => this.log.warn({ err }, 'rate-limit counter connection failed'));
      return new Counters({ kind: 'postgresql', pool });
    }
    return new Counters({ kind: 'memory' });
  }

  private async buildServices(
    db: Database,
    embedded: boolean,
    engine: LocalInferenceEngine,
    counters: Counters,
    metrics: Metrics | undefined,
    acquired: Acquired,
  ): Promise<{ services: Services; usage: UsageRecorder; libraryJobs: LibraryJobs<ImageInputValue> }> {
    const { config, log } = this;
    const health: HealthService = { check: async () => ({ database: await db.ping() }) };
    const limits = new LimitsService({
      prisma: db.prisma,
      counters,
      defaults: config.tenantLimits.defaults,
      cacheMs: config.tenantLimits.cacheMs,
      ...(metrics ? { onRefused: (limit: string) => metrics.refused(limit) } : {}),
    });
    const urlFetcher = config.urlFetch.enabled
      ? new UrlFetcher({ timeoutMs: config.urlFetch.timeoutMs, maxRedirects: config.urlFetch.maxRedirects, maxBytes: config.limits.maxImageBytes })
      : undefined;
    const vocab = createVocabularyServices({
      prisma: db.prisma,
      pool: db.pool,
      engine,
      config,
      log: log.child({ component: 'vocab' }),
      quotas: limits,
    });
    const usage = (acquired.usage = new UsageRecorder(db.prisma, log.child({ component: 'usage' })));
    const library = new ImageLibrary({ prisma: db.prisma, engine, settings: config.library, quotas: limits, log: log.child({ component: 'library' }) });
    const imageSearch = new ImageSearch({
      library,
      engine,
      generator: vocab.generator,
      embed: (texts, options) => vocab.embeddings.embed(texts, options),
      snapshot: (tenantId, vocabularyId) => vocab.labelBanks.forVocabulary(tenantId, vocabularyId),
      descriptionsPerTag: config.vocab.descriptionsPerTag,
      defaultThreshold: config.vocab.defaultThreshold,
    });
    const tagging = new TaggingService({
      engine,
      vocabularies: vocab.labelBanks,
      usage,
      allowance: limits,
      library,
      urlFetcher,
      limits: config.limits,
      log: log.child({ component: 'tagging' }),
    });
    const libraryJobs = (acquired.libraryJobs = createLibraryJobs<ImageInputValue>({
      prisma: db.prisma,
      config,
      // An import item is what tagImage with `store: true` does with one image.
      importer: {
        importImage: async (tenantId, vocabularyId, image, { externalId, signal }) => {
          const { stored } = await tagging.tagImage(tenantId, vocabularyId, { ...image, externalId }, { store: true }, signal);
          return { imageId: stored!.image.id, duplicate: !stored!.created };
        },
      },
      retagger: new ImageRetagger({
        library,
        engine,
        snapshot: (tenantId, vocabularyId) => vocab.labelBanks.forVocabulary(tenantId, vocabularyId),
        changedTags: (tenantId, vocabularyId, since) => vocab.vocabularies.tagsChangedSince(tenantId, vocabularyId, since),
      }),
      readImage: (input, signal) => readImageInput(input, { maxBytes: config.limits.maxImageBytes }, undefined, signal),
      checkExternalId: (externalId, field) => library.checkExternalId(externalId, field),
      urlFetching: urlFetcher !== undefined,
      log: log.child({ component: 'library-jobs' }),
    }));
    // src/vocab knows nothing of stored images: its edits reach them through this listener.
    vocab.onRevision((changes) => libraryJobs.onRevision(changes));
    const auth = new Authenticator(db.prisma, config.platformAdminKey, { cacheTtlMs: config.authCacheMs });
    const services: Services = {
      databaseKind: embedded ? 'embedded' : 'postgresql',
      version: VERSION,
      maxPageSize: config.limits.maxPageSize,
      auth,
      health,
      tenants: new TenantService(db.prisma),
      apiKeys: new ApiKeyService(db.prisma, (id) => auth.forget(id)),
      engine,
      vocab,
      tagging,
      libraryJobs: libraryJobs.service,
      library,
      imageSearch,
      limits,
      usage: new UsageReport(db.prisma),
      feedback: new FeedbackService({ prisma: db.prisma, engine, vocab, log: log.child({ component: 'feedback' }) }),
    };
    return { services, usage, libraryJobs };
  }

  /**
   * Idempotent; safe to call from several signal handlers. A stop during start-up waits for the
   * start to end (a failed start has already released what it held), then stops.
   */
  stop(): Promise<void> {
    const current = this.lifecycle;
    switch (current.phase) {
      case 'stopping':
        return current.stopped;
      case 'stopped':
        return Promise.resolve();
      case 'starting':
        return current.started.catch(() => {}).then(() => this.stop());
      case 'created':
      case 'failed':
        this.lifecycle = { phase: 'stopped' };
        this.log.info('stopped');
        return Promise.resolve();
      case 'running': {
        const stopped = this.release(current).then(() => {
          this.lifecycle = { phase: 'stopped' };
          this.log.info('stopped');
        });
        this.lifecycle = { phase: 'stopping', stopped };
        return stopped;
      }
    }
  }

  /** Releases in the reverse of start order; a step that fails is logged and the rest still run. */
  private async release({ http, metricsServer, vocab, libraryJobs, usage, counters, engine, db, dbServer }: Acquired): Promise<void> {
    const steps: [string, (() => Promise<void>) | undefined][] = [
      ['http', http && (() => http.close(this.config.http.shutdownTimeoutMs))],
      ['metrics server', metricsServer && (() => metricsServer.close())],
      ['library worker', libraryJobs && (() => libraryJobs.stop())],
      ['description worker', vocab && (() => vocab.stop())],
      ['usage records', usage && (() => usage.stop())],
      ['rate-limit counters', counters && (() => counters.stop())],
      ['inference engine', engine && (() => engine.dispose())],
      ['database client', db && (() => db.close())],
      ['database server', dbServer && (() => dbServer.stop())],
    ];
    for (const [name, step] of steps) {
      try {
        await step?.();
      } catch (err) {
        this.log.error({ err }, `stopping ${name} failed`);
      }
    }
  }
}
