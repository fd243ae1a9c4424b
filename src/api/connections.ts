/** Relay-style connections: the paging arguments clients send and the shape pages go back in. */
import { badInput } from '../core/errors.ts';
import type { Page } from '../core/paging.ts';

/** `first` when the client leaves it out. */
const DEFAULT_PAGE_SIZE = 50;

/** A connection field's paging arguments as clients send them. */
export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

/** Paging arguments checked for the services: `first` defaults to 50 and stays within 0..maxPageSize. */
export function pageArgs(args: PageArgs, maxPageSize: number): { first: number; after: string | null | undefined } {
  const first = args.first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0 || first > maxPageSize) {
    throw badInput(`first must be between 0 and ${maxPageSize}`, { field: 'first' });
  }
  return { first, after: args.after };
}

/** One page as a GraphQL connection: edges with cursors, page info and the total. */
export function toConnection<T>(page: Page<T>) {
  const edges = page.nodes.map((node) => ({ cursor: page.cursorOf(node), node }));
  return {
    edges,
    pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.at(-1)?.cursor ?? null },
    totalCount: page.totalCount,
  };
}
