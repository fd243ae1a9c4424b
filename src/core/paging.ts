import { isUuid } from './ids.ts';
import { badInput } from './errors.ts';

/** One page of a listing, in the services' terms (src/api/connections.ts shapes it for clients). */
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

/**
 * Cursors of keyset pages ordered by a value and then the id (a score, a time): the value
 * travels with the id, so a page after a row that has since changed or gone still starts at the
 * same place. Opaque to clients like the id cursors.
 */
export const encodeValueCursor = (value: number | string, id: string) => Buffer.from(`v:${JSON.stringify([value, id])}`, 'utf8').toString('base64url');

export function decodeValueCursor<V extends number | string>(cursor: string, kind: V extends number ? 'number' : 'string'): { value: V; id: string } {
  const raw = Buffer.from(cursor, 'base64url').toString('utf8');
  let parsed: unknown;
  try {
    parsed = raw.startsWith('v:') ? JSON.parse(raw.slice(2)) : undefined;
  } catch {
    parsed = undefined;
  }
  const ok = Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === kind && (kind !== 'number' || Number.isFinite(parsed[0])) && isUuid(parsed[1]);
  if (!ok) throw badInput('invalid cursor', { field: 'after' });
  return { value: (parsed as [V, string])[0], id: (parsed as [V, string])[1] };
}

/** How a table is paged by id cursor (Prisma's `cursor` + `skip: 1`, in the caller's order). */
export interface IdCursorQuery<R> {
  /** Whether the cursor names a row this listing shows; a cursor from elsewhere is refused. */
  exists?(id: string): Promise<unknown>;
  rows(window: { take: number; cursor?: { id: string }; skip?: number }): Promise<R[]>;
  count(): Promise<number>;
}

/**
 * One page after `page.after`: `first + 1` rows are read so the extra one tells whether more
 * follow. `toNodes` shapes the rows kept (default: as they are).
 */
export async function pageById<R extends { id: string }, N extends { id: string } = R>(
  page: { first: number; after?: string | null },
  query: IdCursorQuery<R>,
  toNodes: (rows: R[]) => N[] | Promise<N[]> = (rows) => rows as unknown as N[],
): Promise<Page<N>> {
  const cursor = page.after ? decodeCursor(page.after) : undefined;
  if (cursor && query.exists && !(await query.exists(cursor))) throw badInput('invalid cursor', { field: 'after' });
  const [rows, totalCount] = await Promise.all([query.rows({ take: page.first + 1, ...(cursor ? { cursor: { id: cursor }, skip: 1 } : {}) }), query.count()]);
  return { nodes: await toNodes(rows.slice(0, page.first)), hasNextPage: rows.length > page.first, totalCount, cursorOf: (n) => encodeCursor(n.id) };
}
