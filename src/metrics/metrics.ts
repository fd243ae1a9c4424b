import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineObserver, EngineStats } from '../inference/index.ts';

/** What the metrics read when they are scraped (each a function, so nothing is sampled between scrapes). */
export interface MetricSources {
  engine(): EngineStats;
  labelBanks(): { bytes: number; entries: number; hits: number; misses: number };
  embeddings(): { bytes: number; entries: number; memoryHits: number; databaseHits: number; computed: number };
  llm(): { requests: number; retries: number; failures: number } | undefined;
  jobItemsByState(): Promise<Record<string, number>>;
  /** Library-job items (imports, re-tagging) of all tenants by state; absent: not reported. */
  libraryItemsByState?(): Promise<Record<string, number>>;
  databasePool(): { total: number; idle: number; waiting: number; max: number };
}

const OPERATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_OPERATION_NAMES = 200;
const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The process's Prometheus metrics (prom-client), named by Prometheus conventions: `omnitag_`
 * first, base units (seconds, bytes), `_total` for counters. Counters that the services already
 * keep are read at scrape time; the rest are observed as things happen. Node's own metrics
 * (`process_*`, `nodejs_*`, the event-loop delay among them) come with prom-client's defaults.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly operations: Histogram<'operation' | 'outcome'>;
  private readonly refusals: Counter<'limit'>;
  private readonly queueWait: Histogram<'kind'>;
  private readonly batchSize: Histogram<'kind'>;
  /** Operation names seen: clients name operations, so past a bound they are counted as `other`. */
  private readonly operationNames = new Set<string>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    this.operations = new Histogram({
      name: 'omnitag_graphql_operation_duration_seconds',
      help: 'GraphQL operations by operation name and outcome (ok, or the first error code)',
      labelNames: ['operation', 'outcome'],
      buckets: SECONDS,
      registers,
    });
    this.refusals = new Counter({ name: 'omnitag_rate_limit_rejections_total', help: 'Requests refused by a per-tenant limit or quota, by its name', labelNames: ['limit'], registers });
    this.queueWait = new Histogram({ name: 'omnitag_inference_queue_wait_seconds', help: 'Time work waited in the inference queue, by batch kind', labelNames: ['kind'], buckets: [0.001, ...SECONDS], registers });
    this.batchSize = new Histogram({ name: 'omnitag_inference_batch_size', help: 'Units per inference batch, by kind (encode: images; decode: images; text: descriptions)', labelNames: ['kind'], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers });
  }

  /** Registers the metrics read from the services when scraped (once, when the services exist). */
  watch(sources: MetricSources): void {
    const registers = [this.registry];

    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers, collect() { this.set(read()); } });
    // Counters kept by the services, read when scraped ("counter" type: they only grow).
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[], read: () => [Partial<Record<L, string>>, number][]) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const [labels, value] of read()) this.inc(labels, value);
        },
      });

    gauge('omnitag_inference_queue_depth', 'Units of work waiting in the inference queue', () => sources.engine().queued);
    gauge('omnitag_inference_queue_capacity', 'Units the inference queue holds at most (OMNITAG_MAX_QUEUE)', () => sources.engine().maxQueue);
    gauge('omnitag_inference_workers_busy', 'Inference workers running a batch', () => sources.engine().workers.busy);
    counter('omnitag_inference_overloaded_total', 'Requests refused OVERLOADED because the inference queue was full', [], () => [[{}, sources.engine().rejectedOverloaded]]);
    counter('omnitag_model_runs_total', 'ONNX graph runs, by graph', ['graph'], () => graphs(sources.engine().runs));
    counter('omnitag_model_run_seconds_total', 'Time spent running each ONNX graph', ['graph'], () => graphs(sources.engine().runMs, 1 / 1000));
    gauge('omnitag_label_bank_cache_bytes', 'Bytes of compiled vocabularies held', () => sources.labelBanks().bytes);
    counter('omnitag_label_bank_cache_requests_total', 'Lookups of compiled vocabularies, by result', ['result'], () => {
      const s = sources.labelBanks();
      return [[{ result: 'hit' }, s.hits], [{ result: 'miss' }, s.misses]];
    });
    gauge('omnitag_embedding_cache_bytes', 'Bytes of text embeddings held in memory', () => sources.embeddings().bytes);
    counter('omnitag_embedding_cache_requests_total', 'Text embeddings asked for, by where they came from (memory, database, computed)', ['result'], () => {
      const s = sources.embeddings();
      return [[{ result: 'memory' }, s.memoryHits], [{ result: 'database' }, s.databaseHits], [{ result: 'computed' }, s.computed]];
    });
    counter('omnitag_llm_requests_total', 'Requests sent to the LLM endpoint (retries included)', [], () => [[{}, sources.llm()?.requests ?? 0]]);
    counter('omnitag_llm_failures_total', 'LLM requests that failed for good (after their retries)', [], () => [[{}, sources.llm()?.failures ?? 0]]);
    counter('omnitag_llm_retries_total', 'LLM requests retried', [], () => [[{}, sources.llm()?.retries ?? 0]]);
    new Gauge({
      name: 'omnitag_description_job_items',
      help: 'Description-job items of all tenants, by state (read from the database when scraped)',
      labelNames: ['state'],
      registers,
      async collect() {
        const byState = await sources.jobItemsByState().catch(() => undefined);
        this.reset();
        for (const [state, n] of Object.entries(byState ?? {})) this.set({ state: state.toLowerCase() }, n);
      },
    });
    const libraryItems = sources.libraryItemsByState;
    if (libraryItems) {
      new Gauge({
        name: 'omnitag_library_job_items',
        help: 'Library-job items (imports: one per image; re-tagging: one per job) of all tenants, by state (read from the database when scraped)',
        labelNames: ['state'],
        registers,
        async collect() {
          const byState = await libraryItems().catch(() => undefined);
          this.reset();
          for (const [state, n] of Object.entries(byState ?? {})) this.set({ state: state.toLowerCase() }, n);
        },
      });
    }
    gauge('omnitag_db_pool_connections', 'Database connections open in the pool', () => sources.databasePool().total);
    gauge('omnitag_db_pool_connections_idle', 'Database connections open and idle', () => sources.databasePool().idle);
    gauge('omnitag_db_pool_waiting', 'Queries waiting for a database connection', () => sources.databasePool().waiting);
    gauge('omnitag_db_pool_connections_max', 'Database connections the pool may open', () => sources.databasePool().max);
  }

  /** A GraphQL operation ended: its name (`anonymous` without one) and outcome (`ok` or an error code). */
  observeOperation(operation: string, outcome: string, seconds: number): void {
    let name = OPERATION_NAME.test(operation) ? operation : 'other';
    if (!this.operationNames.has(name)) {
      if (this.operationNames.size >= MAX_OPERATION_NAMES) name = 'other';
      else this.operationNames.add(name);
    }
    this.operations.observe({ operation: name, outcome }, seconds);
  }

  /** A per-tenant limit refused a request. */
  refused(limit: string): void {
    this.refusals.inc({ limit });
  }

  /** The engine's observer: queue waits and batch sizes. */
  readonly engineObserver: EngineObserver = {
    batch: (kind, waitedMs) => {
      this.batchSize.observe({ kind }, waitedMs.length);
      for (const ms of waitedMs) this.queueWait.observe({ kind }, ms / 1000);
    },
  };

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

const graphs = (r: EngineStats['runs'], scale = 1): [{ graph: string }, number][] =>
  (['imageEncoder', 'tagDecoder', 'textEncoder', 'heatmapDecoder'] as const).map((g) => [{ graph: GRAPH_NAMES[g] }, r[g] * scale]);
const GRAPH_NAMES = { imageEncoder: 'image_encoder', tagDecoder: 'tag_decoder', textEncoder: 'text_encoder', heatmapDecoder: 'tag_decoder_heatmaps' } as const;
