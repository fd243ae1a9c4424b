import { useState, type FormEvent } from 'react';
import { AddTagsMutation } from '../api/operations.ts';
import { explainItem } from '../api/messages.ts';
import { useSession } from '../api/session.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { parseTagLines } from './tag-lines.ts';

type Outcome = { text: string; ok: boolean; message: string };

/** Adds tags from pasted lines or a CSV file; each line gets its own result. */
export function BulkAdd({ vocabularyId, onAdded }: { vocabularyId: string; onAdded: () => void }) {
  const { call } = useSession();
  const [text, setText] = useState('');
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const lines = parseTagLines(text);
    const sendable = lines.flatMap((l) => ('input' in l ? [l.input] : []));
    setBusy(true);
    try {
      const results = sendable.length ? (await call(AddTagsMutation, { vocabularyId, tags: sendable })).addTags.results : [];
      let next = 0;
      setOutcomes(
        lines.map((l) => {
          if ('problem' in l) return { text: l.text, ok: false, message: l.problem };
          const r = results[next++]!;
          if (r.ok) return { text: l.text, ok: true, message: `added as “${r.tag?.name}”` };
          const { summary, detail } = explainItem(r.error!);
          return { text: l.text, ok: false, message: `${r.error!.code}: ${detail} — ${summary}` };
        }),
      );
      if (results.some((r) => r.ok)) onAdded();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const readFile = async (file: File | undefined) => {
    if (file) setText(await file.text());
  };

  return (
    <section aria-labelledby="bulk-title">
      <h2 id="bulk-title">Add tags</h2>
      <form onSubmit={submit}>
        <label>
          <span>
            Tags, one per line: <code>name</code>, optionally <code>,threshold</code> and <code>,alias|alias</code>
          </span>
          <textarea rows={5} value={text} onChange={(e) => setText(e.target.value)} />
        </label>
        <label>
          Or read a CSV file (same columns; a header row is skipped)
          <input type="file" accept=".csv,text/csv,text/plain" onChange={(e) => void readFile(e.target.files?.[0])} />
        </label>
        <button type="submit" disabled={busy || !text.trim()}>
          {busy ? 'Adding…' : 'Add tags'}
        </button>
      </form>
      <ErrorNote error={error} />
      {outcomes.length > 0 && (
        <ol className="outcomes" aria-label="Results, line by line">
          {outcomes.map((o, i) => (
            <li key={i} className={o.ok ? 'ok' : 'failed'}>
              <code>{o.text}</code> <span>{o.ok ? '✓' : '✗'} {o.message}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
