import { useState } from 'react';
import { SetTagDescriptionsMutation, TagDescriptionsQuery } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { Dialog } from '../ui/dialog.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { useLoad } from '../ui/use-load.ts';

/** One tag's descriptions with their source; an ADMIN rewrites them by hand or asks for new ones. */
export function Descriptions(props: { tagId: string; tagName: string; admin: boolean; onClose: () => void; onGenerate: () => void; onChanged: () => void }) {
  const { call } = useSession();
  const tag = useLoad(() => call(TagDescriptionsQuery, { id: props.tagId }), [props.tagId]);
  const [draft, setDraft] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  const save = async () => {
    const lines = (draft ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
    try {
      await call(SetTagDescriptionsMutation, { tagId: props.tagId, descriptions: lines });
      setDraft(null);
      tag.reload();
      props.onChanged();
    } catch (err) {
      setError(err);
    }
  };

  const t = tag.data?.tag;
  const texts = t?.descriptions.filter((d) => d.text != null) ?? [];
  return (
    <Dialog title={`Descriptions of ${props.tagName}`} onClose={props.onClose}>
      <ErrorNote error={tag.error ?? error} />
      {t && (
        <>
          <p>
            Status: <strong>{t.status.toLowerCase()}</strong>
            {t.statusReason && <> — {t.statusReason}</>}
          </p>
          {draft === null ? (
            <>
              {t.descriptions.length === 0 && <p>No descriptions.</p>}
              {t.descriptions.length > 0 && texts.length === 0 && (
                <p>
                  {t.descriptions.length} built-in descriptions (BUILTIN): the model holds them as embeddings only, without
                  text.
                </p>
              )}
              {texts.length > 0 && (
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Description</th>
                      <th scope="col">Source</th>
                      <th scope="col">Model</th>
                    </tr>
                  </thead>
                  <tbody>
                    {texts.map((d) => (
                      <tr key={d.id}>
                        <td>{d.text}</td>
                        <td>{d.source}</td>
                        <td>{d.generatorModel ?? '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
              {props.admin && (
                <div className="actions">
                  <button type="button" onClick={() => setDraft(texts.map((d) => d.text).join('\n'))}>
                    Edit by hand
                  </button>
                  <button type="button" onClick={props.onGenerate}>
                    Generate for this tag
                  </button>
                </div>
              )}
            </>
          ) : (
            <>
              <label>
                Descriptions, one per line (saved as MANUAL; they replace all the others)
                <textarea rows={8} value={draft} onChange={(e) => setDraft(e.target.value)} autoFocus />
              </label>
              <div className="actions">
                <button type="button" onClick={() => setDraft(null)}>
                  Cancel
                </button>
                <button type="button" disabled={!draft.trim()} onClick={() => void save()}>
                  Save descriptions
                </button>
              </div>
            </>
          )}
        </>
      )}
    </Dialog>
  );
}
