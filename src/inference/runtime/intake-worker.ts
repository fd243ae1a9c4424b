/**
 * Entry of an image intake worker thread: decodes, checks, resizes and normalises one image
 * at a time (image/preprocess.ts) so that none of it runs on the main thread. The pixels go
 * back as a transferred buffer; failures go back as the AppError's code, message and details.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isAppError } from '../../core/errors.ts';
import { preprocessImage } from '../image/preprocess.ts';
import type { FromIntake, IntakeInit, ToIntake } from './intake-protocol.ts';

const port = parentPort;
if (!port) throw new Error('intake-worker.ts must run as a worker thread');
const init = workerData as IntakeInit;

port.on('message', (message: ToIntake) => {
  if (message.type === 'close') process.exit(0);
  if (message.type !== 'job') return;
  preprocessImage(message.bytes, init.spec, init.limits, init.options).then(
    ({ pixels, source }) => port.postMessage({ type: 'done', id: message.id, pixels, source } satisfies FromIntake, [pixels.buffer as ArrayBuffer]),
    (e: unknown) => {
      const error = isAppError(e)
        ? { message: e.message, code: e.code, details: { ...e.details } }
        : { message: e instanceof Error ? e.message : String(e) };
      port.postMessage({ type: 'error', id: message.id, error } satisfies FromIntake);
    },
  );
});

port.postMessage({ type: 'ready' } satisfies FromIntake);
