import { useEffect, useState } from 'react';
import type { TagRowFragment } from '../generated/graphql.ts';
import { RemoveTagsMutation, TagsQuery } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { ConfirmDialog } from '../ui/dialog.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { TagRow } from './tag-row.tsx';

/** Rows per page: the server pages, so a vocabulary of thousands of tags costs one page at a time. */
export const PAGE_SIZE = 50;

interface Props {
  vocabularyId: string;
  admin: boolean;
  /** Bumped by the parent after edits made elsewhere (bulk add, a finished job). */
  version: number;
  onChanged: () => void;
  onGenerate: (tagIds: string[]) => void;
  onDescriptions: (tag: TagRowFragment) => void;
}

export function TagTable({ vocabularyId, admin, version, onChanged, onGenerate, onDescriptions }: Props) {
  const { call } = useSession();
  const [search, setSearch] = useState('');
  const [query, setQuery] = useState('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<{ rows: TagRowFragment[]; total: number; next: string | null } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<Map<string, string>>(new Map());
  const [confirmRemove, setConfirmRemove] = useState(false);
  const [removal, setRemoval] = useState<string[]>([]);

  // Typing settles for a moment before the search goes out; each search starts at page one.
  useEffect(() => {
    const t = setTimeout(() => {
      setQuery(search.trim());
      setCursors([null]);
    }, 200);
    return () => clearTimeout(t);
  }, [search]);

  const after = cursors[cursors.length - 1]!;
  useEffect(() => {
    let live = true;
    call(TagsQuery, { id: vocabularyId, first: PAGE_SIZE, after, search: query || null }).then(
      ({ vocabulary }) => {
        if (!live) return;
        const { edges, totalCount, pageInfo } = vocabulary.tags;
        setPage({ rows: edges.map((e) => e.node), total: totalCount, next: pageInfo.hasNextPage ? (pageInfo.endCursor ?? null) : null });
        setError(null);
      },
      (err: unknown) => live && setError(err),
    );
    return () => {
      live = false;
    };
  }, [call, vocabularyId, after, query, version]);

  const select = (tag: TagRowFragment, on: boolean) =>
    setSelected((s) => {
      const next = new Map(s);
      if (on) next.set(tag.id, tag.name);
      else next.delete(tag.id);
      return next;
    });

  const remove = async () => {
    setConfirmRemove(false);
    try {
      const results = await call(RemoveTagsMutation, { ids: [...selected.keys()] });
      const failed = results.removeTags.filter((r) => !r.ok);
      setRemoval(failed.map((r) => `${selected.get(r.id) ?? r.id}: ${r.error?.code} ${r.error?.message}`));
      setSelected(new Map());
      onChanged();
    } catch (err) {
      setError(err);
    }
  };

  const pages = page ? Math.max(1, Math.ceil(page.total / PAGE_SIZE)) : 1;
  return (
    <section aria-labelledby="tags-title">
      <h2 id="tags-title">Tags</h2>
      <div className="toolbar">
        <label>
          Search names and aliases
          <input type="search" value={search} onChange={(e) => setSearch(e.target.value)} maxLength={100} />
        </label>
        {admin && (
          <>
            <button type="button" disabled={selected.size === 0} onClick={() => setConfirmRemove(true)}>
              Remove selected ({selected.size})
            </button>
            <button type="button" disabled={selected.size === 0} onClick={() => onGenerate([...selected.keys()])}>
              Generate descriptions for selected
            </button>
            <button type="button" onClick={() => onGenerate([])}>
              Generate descriptions for all
            </button>
          </>
        )}
      </div>
      <ErrorNote error={error} />
      {removal.length > 0 && (
        <ul className="error" aria-label="Tags not removed">
          {removal.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
      {page && (
        <>
          <p role="status" data-testid="tag-count">
            {page.total.toLocaleString('en')} {query ? `tags match “${query}”` : 'tags'} · page {cursors.length} of {pages}
          </p>
          {page.total === 0 ? (
            <p>{query ? 'No tag matches this search.' : 'This vocabulary has no tags yet. Add some below.'}</p>
          ) : (
            <div className="table-scroll">
              <table className="tags">
                <caption className="visually-hidden">Tags by name</caption>
                <thead>
                  <tr>
                    {admin && (
                      <th scope="col">
                        <input
                          type="checkbox"
                          aria-label="Select every tag on this page"
                          checked={page.rows.every((t) => selected.has(t.id))}
                          onChange={(e) => page.rows.forEach((t) => select(t, e.target.checked))}
                        />
                      </th>
                    )}
                    <th scope="col">Name</th>
                    <th scope="col">Threshold</th>
                    <th scope="col">Enabled</th>
                    <th scope="col">Aliases</th>
                    <th scope="col">Other languages</th>
                    <th scope="col">Descriptions</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {page.rows.map((tag) => (
                    <TagRow
                      key={tag.id}
                      tag={tag}
                      admin={admin}
                      selected={selected.has(tag.id)}
                      onSelect={(on) => select(tag, on)}
                      onChanged={(t) => setPage((p) => p && { ...p, rows: p.rows.map((r) => (r.id === t.id ? t : r)) })}
                      onDescriptions={() => onDescriptions(tag)}
                    />
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <div className="pager">
            <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
              Previous page
            </button>
            <button type="button" disabled={!page.next} onClick={() => setCursors((c) => [...c, page.next])}>
              Next page
            </button>
          </div>
        </>
      )}
      {confirmRemove && (
        <ConfirmDialog
          title={`Remove ${selected.size} tags?`}
          consequence={`${[...selected.values()].slice(0, 10).join(', ')}${selected.size > 10 ? ' and more' : ''} will be removed with their descriptions. This cannot be undone.`}
          action="Remove tags"
          onConfirm={() => void remove()}
          onClose={() => setConfirmRemove(false)}
        />
      )}
    </section>
  );
}
