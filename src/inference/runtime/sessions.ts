import * as ort from 'onnxruntime-node';
import { AppError, ErrorCode } from '../../core/errors.ts';
import { GRAPH_FILES, GRAPH_IO, HEATMAP_GRAPH_IO, type GraphName } from '../pack/manifest.ts';
import { packError, type ModelPack } from '../pack/pack.ts';

/** `cuda-or-cpu` tries CUDA and falls back to the CPU with a warning; `cuda` insists. */
export type ProviderPreference = 'cpu' | 'cuda' | 'cuda-or-cpu';
export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionSettings {
  provider: ProviderPreference;
  cudaDeviceId: number;
  /** Threads of one run; spinning is off so idle sessions leave the cores alone. */
  intraOpThreads: number;
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

function sessionOptions(settings: SessionSettings, provider: ExecutionProvider): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: provider === 'cuda' ? [{ name: 'cuda', deviceId: settings.cudaDeviceId }] : ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: 1,
    // ORT's own errors reach us as exceptions; its stderr logger would only repeat them
    logSeverityLevel: 4,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

export interface CreatedSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
}

/**
 * Creates one graph's session on the preferred provider and checks its inputs and outputs
 * against the pack contract. A failure names the file; a contract mismatch also logs the
 * shapes the graph declares, which is what one needs to debug an export.
 */
export function createGraphSession(pack: ModelPack, graph: GraphName, settings: SessionSettings, logger: Logger): Promise<CreatedSession> {
  return createSession(pack, GRAPH_FILES[graph], graph, GRAPH_IO[graph], settings, logger, (session) => checkDeclaredShapes(pack, graph, session));
}

/**
 * The pack's heat-map graph (manifest `heatmaps`), checked like the decoder: the decoder's
 * inputs, `logits` and the attention output [B, C, layers, T].
 */
export function createHeatmapSession(pack: ModelPack, settings: SessionSettings, logger: Logger): Promise<CreatedSession> {
  const hm = pack.manifest.heatmaps;
  if (!hm) return Promise.reject(new AppError(ErrorCode.BAD_USER_INPUT, `model pack ${pack.manifest.name} has no heat-map graph (export it with --heatmaps)`));
  const io = { inputs: HEATMAP_GRAPH_IO.inputs, outputs: HEATMAP_GRAPH_IO.outputs(hm.output) };
  return createSession(pack, hm.graph, 'heatmapDecoder', io, settings, logger, (session) => {
    const shape = declared(session.outputMetadata, hm.output);
    const want = [null, null, hm.layers, pack.manifest.dims.imageTokens];
    if (!shape) return null;
    const bad = shape.length !== want.length || want.some((w, i) => w !== null && typeof shape[i] === 'number' && shape[i] !== w);
    return bad ? `${hm.output} declares shape [${shape}], the manifest implies [${want.map((x) => x ?? '?')}]` : null;
  });
}

async function createSession(
  pack: ModelPack,
  file: string,
  graph: string,
  expected: { inputs: readonly string[]; outputs: readonly string[] },
  settings: SessionSettings,
  logger: Logger,
  checkShapes: (session: ort.InferenceSession) => string | null,
): Promise<CreatedSession> {
  const order: ExecutionProvider[] = settings.provider === 'cpu' ? ['cpu'] : settings.provider === 'cuda' ? ['cuda'] : ['cuda', 'cpu'];
  let session: ort.InferenceSession | undefined;
  let provider: ExecutionProvider = 'cpu';
  for (const candidate of order) {
    try {
      session = await ort.InferenceSession.create(pack.file(file), sessionOptions(settings, candidate));
      provider = candidate;
      break;
    } catch (e) {
      const message = (e as Error).message;
      if (candidate === 'cuda' && isProviderFailure(message)) {
        if (settings.provider === 'cuda') {
          throw new AppError(
            ErrorCode.MODEL_UNAVAILABLE,
            `CUDA was requested but is not available (${message}); install onnxruntime-node with CUDA support, or configure the provider as "cuda-or-cpu" or "cpu"`,
            { cause: e, details: { provider: 'cuda', file } },
          );
        }
        logger.warn({ graph, err: message }, 'CUDA is not available, falling back to the CPU');
        continue;
      }
      throw packError(pack.dir, file, `onnxruntime cannot load it: ${message}`, e);
    }
  }
  if (!session) throw packError(pack.dir, file, 'no execution provider could load it');

  const missingIn = expected.inputs.filter((n) => !session.inputNames.includes(n));
  const missingOut = expected.outputs.filter((n) => !session.outputNames.includes(n));
  const extraIn = session.inputNames.filter((n) => !expected.inputs.includes(n));
  if (missingIn.length || missingOut.length || extraIn.length) {
    logger.error({ graph, file, inputs: session.inputMetadata, outputs: session.outputMetadata }, 'graph does not match the pack contract');
    await session.release();
    throw packError(
      pack.dir,
      file,
      `inputs/outputs do not match the contract: expected inputs [${expected.inputs}] and outputs [${expected.outputs}], ` +
        `found inputs [${session.inputNames}] and outputs [${session.outputNames}]`,
    );
  }
  const shapeProblem = checkShapes(session);
  if (shapeProblem) {
    logger.error({ graph, file, inputs: session.inputMetadata, outputs: session.outputMetadata }, 'graph shapes do not match the manifest');
    await session.release();
    throw packError(pack.dir, file, shapeProblem);
  }
  return { session, provider };
}

function isProviderFailure(message: string): boolean {
  return /cuda|provider|shared library|libcu/i.test(message);
}

type Dim = number | string;
function declared(meta: readonly ort.InferenceSession.ValueMetadata[], name: string): readonly Dim[] | undefined {
  const m = meta.find((v) => v.name === name);
  return m && m.isTensor ? m.shape : undefined;
}

/** Compares the fixed (non-symbolic) dims a graph declares with the manifest's dims. */
function checkDeclaredShapes(pack: ModelPack, graph: GraphName, session: ort.InferenceSession): string | null {
  const m = pack.manifest;
  const S = m.image.size;
  const T = m.dims.imageTokens;
  const E = m.dims.embedDim;
  const L = m.dims.textContext;
  const checks: Array<[string, readonly Dim[] | undefined, readonly (number | null)[]]> =
    graph === 'imageEncoder'
      ? [
          ['pixel_values', declared(session.inputMetadata, 'pixel_values'), [null, 3, S, S]],
          ['image_embeds', declared(session.outputMetadata, 'image_embeds'), [null, T, E]],
        ]
      : graph === 'tagDecoder'
        ? [
            ['image_embeds', declared(session.inputMetadata, 'image_embeds'), [null, T, E]],
            ['label_embeds', declared(session.inputMetadata, 'label_embeds'), [null, null, E]],
            ['label_mask', declared(session.inputMetadata, 'label_mask'), [null, null]],
            ['logits', declared(session.outputMetadata, 'logits'), [null, null]],
          ]
        : [
            ['input_ids', declared(session.inputMetadata, 'input_ids'), [null, L]],
            ['text_embeds', declared(session.outputMetadata, 'text_embeds'), [null, E]],
          ];
  for (const [name, shape, want] of checks) {
    if (!shape) continue; // non-tensor metadata: ORT will complain at run time
    if (shape.length !== want.length) return `${name} has rank ${shape.length} ([${shape}]), expected ${want.length}`;
    for (let i = 0; i < want.length; i++) {
      const w = want[i];
      const d = shape[i];
      if (w !== null && typeof d === 'number' && d !== w) {
        return `${name} declares shape [${shape}], the manifest implies [${want.map((x) => x ?? '?')}]`;
      }
    }
  }
  return null;
}
