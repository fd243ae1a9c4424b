import type { ImageLimits } from '../image/limits.ts';
import type { ImageSource, ImageSpec, PreprocessOptions } from '../image/preprocess.ts';
import type { SerializedError } from './worker-protocol.ts';

/** `workerData` of an intake worker: what every image of this engine is preprocessed with. */
export interface IntakeInit {
  spec: ImageSpec;
  limits: ImageLimits;
  options: PreprocessOptions;
}

export type ToIntake = { type: 'job'; id: number; bytes: Uint8Array } | { type: 'close' };

export type FromIntake =
  | { type: 'ready' }
  | { type: 'done'; id: number; pixels: Float32Array; source: ImageSource }
  | { type: 'error'; id: number; error: SerializedError };
