import { explain } from '../api/messages.ts';

/** An error in words, announced to screen readers. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const { code, summary, detail } = explain(error);
  return (
    <div className="error" role="alert" data-code={code}>
      <strong>{summary}</strong> <span className="detail">({code}: {detail})</span>
    </div>
  );
}
