import { isUuid } from './ids.ts';
import { badInput } from './errors.ts';

/** One page of a Relay-style connection, before it is shaped for GraphQL. */
export interface Page<T> {
  readonly nodes: readonly T[];
  readonly hasNextPage: boolean;
  readonly totalCount: number;
  cursorOf(node: T): string;
}


/** Cursors are opaque to clients: base64url of the row id. */
export const encodeCursor = (id: string) => Buffer.from(`c:${id}`, 'utf8').toString('base64url');

export function decodeCursor(cursor: string): string {
  const raw = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = raw.startsWith('c:') ? raw.slice(2) : '';
  if (!isUuid(id)) throw badInput('invalid cursor', { field: 'after' });
  return id;
}

export function checkPageSize(first: number, max: number): number {
  if (!Number.isInteger(first) || first < 0 || first > max) throw badInput(`first must be between 0 and ${max}`, { field: 'first' });
  return first;
}

export function toConnection<T>(page: Page<T>) {
  const edges = page.nodes.map((node) => ({ cursor: page.cursorOf(node), node }));
  return {
    edges,
    pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.at(-1)?.cursor ?? null },
    totalCount: page.totalCount,
  };
}
