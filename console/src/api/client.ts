import type { TypedDocumentString } from '../generated/graphql.ts';

/** A failed call, with the API's stable code (or NETWORK when the server could not be reached). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

interface GraphQLBody<R> {
  data?: R | null;
  errors?: { message: string; extensions?: { code?: string; [k: string]: unknown } }[];
}

/** Where the API lives: the same origin that served the console. */
const ENDPOINT = '/graphql';

/**
 * Sends one operation. With `files`, it goes as a GraphQL multipart request: each file fills the
 * variable path it is keyed by (e.g. `images.0.upload`).
 */
export async function request<R, V>(
  document: TypedDocumentString<R, V>,
  variables: V,
  key: string | null,
  files?: Map<string, File>,
): Promise<R> {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  let body: BodyInit;
  const operation = JSON.stringify({ query: document.toString(), variables });
  if (files?.size) {
    const form = new FormData();
    form.append('operations', operation);
    const paths = [...files.keys()];
    form.append('map', JSON.stringify(Object.fromEntries(paths.map((p, i) => [String(i), [`variables.${p}`]]))));
    paths.forEach((p, i) => form.append(String(i), files.get(p)!));
    // The server's CSRF guard admits multipart requests that carry this header.
    headers['apollo-require-preflight'] = 'true';
    body = form;
  } else {
    headers['content-type'] = 'application/json';
    body = operation;
  }
  let res: Response;
  try {
    res = await fetch(ENDPOINT, { method: 'POST', headers, body });
  } catch {
    throw new ApiError('NETWORK', 'the Omnitag server cannot be reached');
  }
  let parsed: GraphQLBody<R>;
  try {
    parsed = (await res.json()) as GraphQLBody<R>;
  } catch {
    throw new ApiError(res.status >= 500 ? 'NETWORK' : 'INTERNAL_SERVER_ERROR', `the server answered HTTP ${res.status} without a GraphQL body`);
  }
  const first = parsed.errors?.[0];
  if (first) {
    const { code = 'INTERNAL_SERVER_ERROR', ...details } = first.extensions ?? {};
    throw new ApiError(String(code), first.message, details);
  }
  if (!parsed.data) throw new ApiError('INTERNAL_SERVER_ERROR', 'the server answered without data');
  return parsed.data;
}
