import { ApiError } from './client.ts';

/** What each code means to a person using the console. */
const EXPLANATIONS: Record<string, string> = {
  UNAUTHENTICATED: 'This key is not valid: it may be mistyped, revoked or expired.',
  FORBIDDEN: 'This key may not do that (a CLIENT key only reads and tags; tenants need the platform admin key).',
  NOT_FOUND: 'It no longer exists (someone may have deleted it).',
  BAD_USER_INPUT: 'The input was not accepted.',
  CONFLICT: 'That name is already taken.',
  BAD_IMAGE: 'This file is not an image the server can read (damaged, or not an image at all).',
  IMAGE_TOO_LARGE: 'The image is too large for this server (too many bytes or pixels).',
  UNSUPPORTED_FORMAT: 'This image format is not supported; use a common one such as JPEG, PNG or WebP.',
  PAYLOAD_TOO_LARGE: 'The request is too large for this server; send fewer or smaller images.',
  OVERLOADED: 'The server is busy right now and turned the request away; try again in a moment.',
  LLM_UNAVAILABLE: 'The language model that writes descriptions cannot be reached.',
  LLM_RATE_LIMITED: 'The language model is limiting requests; try again later.',
  MODEL_UNAVAILABLE: 'The tagging model is not available on this server.',
  DATABASE_UNAVAILABLE: 'The server cannot reach its database; try again shortly.',
  CANCELLED: 'The request was cancelled.',
  NETWORK: 'The Omnitag server cannot be reached. Check that it is running.',
  INTERNAL_SERVER_ERROR: 'The server failed unexpectedly.',
};

export interface Explained {
  code: string;
  summary: string;
  detail: string;
}

/** An error in words: what the code means, plus the server's own message. */
export function explain(err: unknown): Explained {
  if (err instanceof ApiError) {
    return { code: err.code, summary: EXPLANATIONS[err.code] ?? `The server answered ${err.code}.`, detail: err.message };
  }
  return { code: 'ERROR', summary: 'Something went wrong in the console.', detail: err instanceof Error ? err.message : String(err) };
}

/** The same for a per-item error of a batch answer ({ code, message }). */
export const explainItem = (e: { code: string; message: string }): Explained => explain(new ApiError(e.code, e.message));
