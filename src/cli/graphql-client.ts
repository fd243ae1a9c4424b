/**
 * A minimal client of an Omnitag server's GraphQL API, for the commands that work on a tenant's
 * vocabulary (`omnitag eval --api`): POST with the tenant key, the first error of an answer
 * thrown as an `AppError` with the server's code.
 */
import { AppError, ErrorCode, type ErrorCode as Code } from '../core/errors.ts';

export interface GraphqlEndpoint {
  url: string;
  key: string;
}

export async function graphql<T>(endpoint: GraphqlEndpoint, query: string, variables: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(endpoint.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${endpoint.key}` },
      body: JSON.stringify({ query, variables }),
      signal,
    });
  } catch (e) {
    throw new AppError(ErrorCode.INTERNAL_SERVER_ERROR, `${endpoint.url}: ${(e as Error).message}`, { cause: e });
  }
  const body = (await res.json().catch(() => null)) as { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> } | null;
  const first = body?.errors?.[0];
  if (first) {
    const code = (first.extensions?.code && first.extensions.code in ErrorCode ? first.extensions.code : ErrorCode.INTERNAL_SERVER_ERROR) as Code;
    throw new AppError(code, first.message);
  }
  if (!res.ok || !body?.data) throw new AppError(ErrorCode.INTERNAL_SERVER_ERROR, `${endpoint.url} answered HTTP ${res.status} without data`);
  return body.data;
}
