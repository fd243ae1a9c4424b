import { useState } from 'react';

/**
 * Forward paging over a connection: the cursors of the pages seen so far, so that going back
 * needs no backward paging from the API. `after` is the current page's cursor.
 */
export function usePages() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  return {
    after: cursors[cursors.length - 1]!,
    /** 1-based number of the current page. */
    number: cursors.length,
    first: cursors.length === 1,
    next: (endCursor: string | null | undefined) => setCursors((c) => [...c, endCursor ?? null]),
    back: () => setCursors((c) => c.slice(0, -1)),
    reset: () => setCursors([null]),
  };
}

/** Previous / Next page buttons for `usePages`. */
export function Pager({ pages, pageInfo }: { pages: ReturnType<typeof usePages>; pageInfo: { hasNextPage: boolean; endCursor?: string | null } }) {
  return (
    <div className="pager">
      <button type="button" disabled={pages.first} onClick={pages.back}>
        Previous page
      </button>
      <button type="button" disabled={!pageInfo.hasNextPage} onClick={() => pages.next(pageInfo.endCursor)}>
        Next page
      </button>
    </div>
  );
}
