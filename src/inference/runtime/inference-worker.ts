/**
 * Entry of an inference worker thread: owns one ModelRunner (the ORT sessions) and runs the
 * jobs the pool posts, one at a time. Everything blocking happens here, not on the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isAppError } from '../../core/errors.ts';
import { ModelRunner, type RunCounts } from './model-runner.ts';
import { openModelPack } from '../pack/pack.ts';
import { ClipTokenizer } from '../text/tokenizer.ts';
import type { FromWorker, Job, JobResult, SerializedError, ToWorker, WorkerInit } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('inference-worker.ts must run as a worker thread');

const init = workerData as WorkerInit;
const send = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

function serialize(e: unknown): SerializedError {
  if (isAppError(e)) return { message: e.message, code: e.code, details: { ...e.details } };
  return { message: e instanceof Error ? e.message : String(e) };
}

async function start(): Promise<{ runner: ModelRunner; tokenizer: ClipTokenizer }> {
  // checksums were verified (if asked) by the main thread; sizes are re-checked here cheaply
  const pack = await openModelPack(init.packDir);
  const runner = new ModelRunner(pack, init.settings);
  const [provider, tokenizer] = await Promise.all([
    runner.warmup(),
    ClipTokenizer.fromFile(pack.file(pack.manifest.tokenizer.file)),
  ]);
  // a worker is ready only once warm: no request pays onnxruntime's first run at these shapes
  const warmStarted = performance.now();
  const warmed = init.warmup ? await runner.warm(init.warmup) : [];
  send({ type: 'ready', provider, warmed, warmupMs: performance.now() - warmStarted });
  return { runner, tokenizer };
}

async function execute(runner: ModelRunner, tokenizer: ClipTokenizer, job: Job): Promise<{ result: JobResult; transfer: ArrayBuffer[] }> {
  switch (job.kind) {
    case 'encode': {
      const imageEmbeds = await runner.encodeImages(job.pixels, job.count);
      return { result: { kind: 'encode', imageEmbeds }, transfer: [imageEmbeds.buffer as ArrayBuffer] };
    }
    case 'decode': {
      const out = await runner.decode(job.imageEmbeds, job.count, job.segment, { chunkTags: job.chunkTags, explain: job.explain });
      const transfer = [out.logits.buffer as ArrayBuffer];
      if (out.weights) transfer.push(out.weights.buffer as ArrayBuffer);
      return { result: { kind: 'decode', ...out }, transfer };
    }
    case 'texts': {
      const { ids, truncated } = tokenizer.encodeBatch(job.texts, runner.pack.manifest.tokenizer.context);
      const embeddings = await runner.encodeTexts(ids, job.texts.length);
      return { result: { kind: 'texts', embeddings, truncated }, transfer: [embeddings.buffer as ArrayBuffer] };
    }
    case 'heatmaps': {
      const attention = await runner.attention(job.imageEmbeds, job);
      return { result: { kind: 'heatmaps', attention }, transfer: [attention.buffer as ArrayBuffer] };
    }
    case 'count-tokens':
      // + start and end tokens; not cut to the context, so callers can see what would be cut
      return { result: { kind: 'count-tokens', counts: job.texts.map((text) => tokenizer.encode(text).length + 2) }, transfer: [] };
  }
}

const started = start();
started.catch((e: unknown) => {
  send({ type: 'failed', error: serialize(e) });
  process.exit(1); // ends this thread only
});

const runsSnapshot = (r: RunCounts): RunCounts => ({ ...r });

port.on('message', (message: ToWorker) => {
  if (message.type === 'close') {
    void started
      .then(({ runner }) => runner.dispose())
      .catch(() => undefined)
      .finally(() => process.exit(0));
    return;
  }
  if (message.type !== 'job') return; // unknown messages are ignored (forward compatible)
  void started.then(async ({ runner, tokenizer }) => {
    try {
      const { result, transfer } = await execute(runner, tokenizer, message.job);
      send({ type: 'done', id: message.id, result, runs: runsSnapshot(runner.runs), runMs: runsSnapshot(runner.runMs) }, transfer);
    } catch (e) {
      send({ type: 'error', id: message.id, error: serialize(e), runs: runsSnapshot(runner.runs), runMs: runsSnapshot(runner.runMs) });
    }
  });
});
