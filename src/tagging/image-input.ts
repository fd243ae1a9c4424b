import type { Readable } from 'node:stream';
import type { FileUpload } from 'graphql-upload-minimal';
import { AppError, ErrorCode, badInput, isAppError } from '../core/errors.ts';
import type { UrlFetcher } from './url-fetcher.ts';

/** One image as the API receives it: exactly one of the fields. */
export interface ImageInputValue {
  upload?: Promise<FileUpload> | null;
  base64?: string | null;
  url?: string | null;
  /** Bytes read earlier (an import's staged image): never from a client's request. */
  bytes?: Uint8Array | null;
  /** The client's id for the image when it is stored (`store: true`); not a source of bytes. */
  externalId?: string | null;
}

export interface ImageInputLimits {
  readonly maxBytes: number;
}

const tooLarge = (max: number) => new AppError(ErrorCode.IMAGE_TOO_LARGE, `image is over the ${max}-byte limit`);

/** Reads an image input into bytes, never holding more than `maxBytes` of it. */
export async function readImageInput(
  input: ImageInputValue,
  limits: ImageInputLimits,
  fetcher: UrlFetcher | undefined,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const given = (['upload', 'base64', 'url', 'bytes'] as const).filter((k) => input[k] !== undefined && input[k] !== null);
  if (given.length !== 1) throw badInput('an image needs exactly one of upload, base64 or url', { field: 'image' });
  if (input.bytes != null) {
    if (input.bytes.length > limits.maxBytes) throw tooLarge(limits.maxBytes);
    return input.bytes;
  }
  if (input.base64 != null) return decodeBase64(input.base64, limits.maxBytes);
  if (input.url != null) {
    if (!fetcher) {
      throw new AppError(ErrorCode.FORBIDDEN, 'images by URL are disabled on this server (OMNITAG_ALLOW_URL_FETCH)');
    }
    return fetcher.fetch(input.url, signal);
  }
  const upload = await input.upload!.catch((e: unknown) => {
    throw uploadError(e, limits.maxBytes);
  });
  return readUpload(upload, limits.maxBytes);
}

function decodeBase64(text: string, maxBytes: number): Uint8Array {
  const data = text.startsWith('data:') ? text.slice(text.indexOf(',') + 1) : text;
  const bytes = decodeCleanBase64(data, maxBytes) ?? decodeLooseBase64(data, maxBytes);
  if (bytes.length > maxBytes) throw tooLarge(maxBytes);
  return bytes;
}

/**
 * The common case, a single line of base64, without scanning it in JavaScript: Node's decoder
 * skips every character outside the alphabet (URL-safe letters included), and each skipped
 * character shortens the output, so an output of exactly the length the text promises proves
 * the text was clean. Undefined when it was not, or is too long to try.
 */
function decodeCleanBase64(data: string, maxBytes: number): Buffer | undefined {
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  const significant = data.length - padding;
  if (significant % 4 === 1 || Math.floor((significant * 3) / 4) > maxBytes) return undefined;
  const bytes = Buffer.from(data, 'base64');
  return bytes.length === Math.floor((significant * 3) / 4) ? bytes : undefined;
}

/** Wrapped lines (whitespace) are accepted; anything else outside the alphabet is refused. */
function decodeLooseBase64(data: string, maxBytes: number): Buffer {
  const compact = data.replace(/\s+/g, '');
  if (Math.floor((compact.length * 3) / 4) > maxBytes + 3) throw tooLarge(maxBytes);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(compact)) throw badInput('base64 image is not valid base64', { field: 'base64' });
  return Buffer.from(compact, 'base64');
}

async function readUpload(upload: FileUpload, maxBytes: number): Promise<Uint8Array> {
  let stream: Readable;
  try {
    stream = upload.createReadStream() as unknown as Readable;
  } catch (e) {
    throw uploadError(e, maxBytes);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    // The stream is the request body itself, read as it arrives (nothing is kept on disk). On an
    // early exit it is drained, not destroyed: the files after it are still to come.
    for await (const chunk of stream.iterator({ destroyOnReturn: false })) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk as Buffer);
    }
  } catch (e) {
    stream.resume();
    throw uploadError(e, maxBytes);
  }
  return Buffer.concat(chunks, size);
}

/**
 * The upload reader's failures in the API's terms. All of them come from the request's body (a
 * file over the limit, used twice, named in the map but never sent, cut short), so they are the
 * client's to fix.
 */
function uploadError(e: unknown, maxBytes: number): unknown {
  if (isAppError(e)) return e;
  const message = String((e as Error).message);
  // 413 is also the reader's answer to too many files; only its byte limit means this file.
  if (/exceeds the \d+ byte size limit/.test(message)) return tooLarge(maxBytes);
  // One file part mapped to two images: its stream can be read only once.
  if (/createReadStream\(\) multiple times/.test(message)) return badInput('each uploaded file can be used by one image only', { field: 'upload' });
  return badInput(`the uploaded file could not be read: ${message}`, { field: 'upload' });
}
