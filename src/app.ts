import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';
import { openDatabase, type Database } from './db/client.ts';
import { applyMigrations, pendingMigrations } from './db/migrate.ts';
import { openDatabaseServer, type DatabaseServer } from './db/server.ts';
import { createHttpServer, type HttpServer } from './api/server.ts';
import { createLocalInferenceEngine, type LocalInferenceEngine } from './inference/runtime/local-engine.ts';
import { TaggingService } from './tagging/tagging-service.ts';
import { UrlFetcher } from './tagging/url-fetcher.ts';
import { UsageRecorder } from './tagging/usage-recorder.ts';
import { ClipTokenizer } from './inference/text/tokenizer.ts';
import { createVocabularyServices, type VocabularyServices } from './vocab/index.ts';
import { ApiKeyService } from './tenancy/api-key-service.ts';
import type { Logger } from './core/log.ts';
import type { HealthService, Services } from './api/services.ts';
import { Authenticator } from './tenancy/authenticator.ts';
import { TenantService } from './tenancy/tenants.ts';

const VERSION: string = JSON.parse(
  fs.readFileSync(path.resolve(import.meta.dirname, '..', 'package.json'), 'utf8'),
).version;

type State = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/**
 * The composition root and the one lifecycle owner: it builds config → database → services →
 * GraphQL → HTTP in that order, and stops them in reverse (HTTP drains first, the database
 * closes last).
 */
export class App {
  private state: State = 'created';
  private dbServer: DatabaseServer | undefined;
  private db: Database | undefined;
  private engine: LocalInferenceEngine | undefined;
  private vocab: VocabularyServices | undefined;
  private usage: UsageRecorder | undefined;
  private http: HttpServer | undefined;
  /** Built during start(); exposed for tests and tools that run inside the process. */
  services: Services | undefined;
  private stopping: Promise<void> | undefined;
  address: { host: string; port: number } | undefined;

  constructor(
    readonly config: Config,
    private readonly log: Logger,
  ) {}

  get url(): string {
    if (!this.address) throw new Error('not listening');
    const host = this.address.host.includes(':') ? `[${this.address.host}]` : this.address.host;
    return `http://${host}:${this.address.port}`;
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`cannot start an app that is ${this.state}`);
    this.state = 'starting';
    try {
      const { config, log } = this;
      this.dbServer = await openDatabaseServer(config);
      log.info({ embedded: this.dbServer.embedded }, 'database server ready');
      if (config.database.migrateOnStart) {
        const applied = await applyMigrations(this.dbServer.url);
        if (applied.length) log.info({ applied }, 'migrations applied');
        await this.dbServer.whenIdle();
      }
      const db = (this.db = openDatabase(this.dbServer.url, this.dbServer.maxConnections, log));
      if (!(await db.ping(10_000))) throw new Error('the database does not answer');
      const pending = await pendingMigrations(db);
      if (pending.length) {
        throw new Error(`the database lacks migrations ${pending.join(', ')}: run \`npm run db:migrate\``);
      }
      const engine = (this.engine = await this.startEngine());
      const services = (this.services = await this.buildServices(db, this.dbServer.embedded, engine));
      (this.vocab = services.vocab).start();
      this.http = await createHttpServer(services, log);
      this.address = await this.http.listen(config.http.host, config.http.port);
      this.state = 'running';
      log.info({ url: `${this.url}/graphql` }, 'Omnitag is listening');
    } catch (err) {
      this.state = 'failed';
      await this.release();
      throw err;
    }
  }

  /** Opens the model pack and starts the inference workers; a broken pack fails start-up here. */
  private async startEngine(): Promise<LocalInferenceEngine> {
    const { model, limits } = this.config;
    const engine = await createLocalInferenceEngine({
      packDir: model.packDir,
      verifyChecksums: model.verifyChecksums,
      provider: model.executionProvider,
      cudaDeviceId: model.cudaDevice,
      workers: model.workers,
      intraOpThreads: model.intraOpThreads,
      maxBatchSize: model.maxBatch,
      maxWaitMs: model.maxBatchWaitMs,
      maxQueue: model.maxQueue,
      // Texts are batched too, two batches in flight; both must fit the queue that feeds them.
      textBatchSize: Math.max(1, Math.min(64, Math.floor(model.maxQueue / 2))),
      imageLimits: { maxBytes: limits.maxImageBytes, maxPixels: limits.maxImagePixels },
      logger: this.log.child({ component: 'inference' }),
    });
    const info = await engine.start();
    this.log.info({ pack: info.packName, provider: info.provider, workers: info.workers }, 'inference engine ready');
    return engine;
  }

  private async buildServices(db: Database, embedded: boolean, engine: LocalInferenceEngine): Promise<Services> {
    const { config, log } = this;
    const health: HealthService = { check: async () => ({ database: await db.ping() }) };
    const urlFetcher = config.urlFetch.enabled
      ? new UrlFetcher({ timeoutMs: config.urlFetch.timeoutMs, maxRedirects: config.urlFetch.maxRedirects, maxBytes: config.limits.maxImageBytes })
      : undefined;
    const vocab = createVocabularyServices({
      prisma: db.prisma,
      pool: db.pool,
      engine,
      config,
      log: log.child({ component: 'vocab' }),
      // Lets LLM answers be cut to CLIP's context exactly.
      tokenizer: await ClipTokenizer.fromFile(engine.pack.file(engine.pack.manifest.tokenizer.file)),
    });
    const usage = (this.usage = new UsageRecorder(db.prisma, log.child({ component: 'usage' })));
    const tagging = new TaggingService({
      engine,
      vocabularies: vocab.labelBanks,
      usage,
      urlFetcher,
      limits: config.limits,
      log: log.child({ component: 'tagging' }),
    });
    const auth = new Authenticator(db.prisma, config.platformAdminKey, { cacheTtlMs: config.authCacheMs });
    return {
      config,
      db,
      databaseKind: embedded ? 'embedded' : 'postgresql',
      version: VERSION,
      auth,
      health,
      tenants: new TenantService(db.prisma),
      apiKeys: new ApiKeyService(db.prisma, (id) => auth.forget(id)),
      engine,
      vocab,
      tagging,
    };
  }

  /** Idempotent; safe to call from several signal handlers. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.state === 'stopped') return;
      this.state = 'stopping';
      await this.release();
      this.state = 'stopped';
      this.log.info('stopped');
    })();
    return this.stopping;
  }

  private async release(): Promise<void> {
    const steps: [string, (() => Promise<void>) | undefined][] = [
      ['http', this.http && (() => this.http!.close(this.config.http.shutdownTimeoutMs))],
      ['description worker', this.vocab && (() => this.vocab!.stop())],
      ['usage records', this.usage && (() => this.usage!.stop())],
      ['inference engine', this.engine && (() => this.engine!.dispose())],
      ['database client', this.db && (() => this.db!.close())],
      ['database server', this.dbServer && (() => this.dbServer!.stop())],
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
