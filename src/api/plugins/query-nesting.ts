import type { RequestHandler } from 'express';
import { badInput } from '../../core/errors.ts';

export interface QueryNestingOptions {
  /** Most brackets (`{`, `(`, `[`) open at once in a document. */
  maxNesting: number;
}

/**
 * Refuses a document nested too deep before it is parsed. graphql-js parses (and validates)
 * by recursion, one level of the stack per level of nesting; a selection thousands of levels
 * deep overflows the stack before the depth limit, which looks at the parsed document, can
 * answer. Counting brackets is linear and needs no stack; the bound sits far above the
 * configured query depth, which still decides every document that passes here.
 *
 * Reads the document where Apollo will: the JSON or multipart body's `query`, or the query
 * string of a GET. Refusals go to the error handler as BAD_USER_INPUT (400).
 */
export function queryNesting({ maxNesting }: QueryNestingOptions): RequestHandler {
  return (req, _res, next) => {
    const body = req.body as { query?: unknown } | undefined;
    const fromUrl = req.method === 'GET' ? req.query.query : undefined;
    const query = typeof body?.query === 'string' ? body.query : typeof fromUrl === 'string' ? fromUrl : undefined;
    if (query !== undefined && nestingExceeds(query, maxNesting)) {
      return next(badInput(`the query is too deep: brackets nested more than ${maxNesting} levels`, { field: 'query' }));
    }
    next();
  };
}

/**
 * Whether the brackets of a GraphQL document nest deeper than `max`. Strings, block strings
 * and comments are skipped (a brace in them is text); unbalanced closers count as nothing,
 * for the parser to report.
 */
export function nestingExceeds(source: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 0x7b || c === 0x28 || c === 0x5b) {
      // { ( [
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x29 || c === 0x5d) {
      // } ) ]
      if (depth > 0) depth--;
    } else if (c === 0x23) {
      // # comment, to the end of the line
      while (i + 1 < source.length && source[i + 1] !== '\n' && source[i + 1] !== '\r') i++;
    } else if (c === 0x22) {
      i = source.startsWith('"""', i) ? endOfBlockString(source, i + 3) : endOfString(source, i + 1);
    }
  }
  return false;
}

/** Index of the closing quote of a "string" whose text starts at `from` (or where the line ends). */
function endOfString(source: string, from: number): number {
  for (let i = from; i < source.length; i++) {
    const ch = source[i];
    if (ch === '\\') i++;
    else if (ch === '"' || ch === '\n' || ch === '\r') return i;
  }
  return source.length;
}

/** Index of the last quote of a """block string""" whose text starts at `from`. */
function endOfBlockString(source: string, from: number): number {
  for (let i = from; i < source.length; i++) {
    if (source.startsWith('\\"""', i)) i += 3;
    else if (source.startsWith('"""', i)) return i + 2;
  }
  return source.length;
}
