import { useState, type FormEvent } from 'react';
import { CreateVocabularyMutation, DeleteVocabularyMutation, ModelInfoQuery, RenameVocabularyMutation, VocabulariesQuery } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { href } from '../route.ts';
import { ConfirmDialog, Dialog } from '../ui/dialog.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { Pager, usePages } from '../ui/pages.tsx';
import { when } from '../ui/format.ts';
import { useLoad } from '../ui/use-load.ts';

type Vocab = { id: string; name: string; stats: { tags: number } };

export function Vocabularies({ admin }: { admin: boolean }) {
  const { call } = useSession();
  const pages = usePages(); // of 100, by name
  const { after } = pages;
  const list = useLoad(() => call(VocabulariesQuery, { after }), [after]);
  const model = useLoad(() => call(ModelInfoQuery, {}), []);
  const [dialog, setDialog] = useState<{ kind: 'create' } | { kind: 'rename' | 'delete'; vocab: Vocab } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const close = () => setDialog(null);
  const done = () => {
    setDialog(null);
    list.reload();
  };

  const remove = async (v: Vocab) => {
    try {
      await call(DeleteVocabularyMutation, { id: v.id });
      done();
    } catch (err) {
      setDialog(null);
      setError(err);
    }
  };

  const vocabularies = list.data?.vocabularies;
  return (
    <section aria-labelledby="vocab-title">
      <h1 id="vocab-title">Vocabularies</h1>
      {admin && (
        <button type="button" onClick={() => setDialog({ kind: 'create' })}>
          New vocabulary
        </button>
      )}
      <ErrorNote error={list.error ?? error} />
      {vocabularies && vocabularies.totalCount === 0 && <p>No vocabularies yet.{admin ? ' Create one to start tagging.' : ''}</p>}
      {vocabularies && vocabularies.totalCount > 0 && (
        <table>
          <caption className="visually-hidden">Vocabularies by name</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Tags</th>
              <th scope="col">Enabled</th>
              <th scope="col">Generating</th>
              <th scope="col">Failed</th>
              <th scope="col">Revision</th>
              <th scope="col">Changed</th>
              {admin && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {vocabularies.edges.map(({ node: v }) => (
              <tr key={v.id}>
                <td>
                  <a href={href({ screen: 'vocabulary', id: v.id })}>{v.name}</a>
                  {v.fromBuiltin && <span className="badge">built-in tags</span>}
                </td>
                <td>{v.stats.tags}</td>
                <td>{v.stats.enabledTags}</td>
                <td>{v.stats.pendingTags}</td>
                <td>{v.stats.failedTags}</td>
                <td>{v.revision}</td>
                <td>{when(v.updatedAt)}</td>
                {admin && (
                  <td className="row-actions">
                    <button type="button" onClick={() => setDialog({ kind: 'rename', vocab: v })}>
                      Rename<span className="visually-hidden"> {v.name}</span>
                    </button>
                    <button type="button" className="danger" onClick={() => setDialog({ kind: 'delete', vocab: v })}>
                      Delete<span className="visually-hidden"> {v.name}</span>
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {vocabularies && (vocabularies.pageInfo.hasNextPage || !pages.first) && <Pager pages={pages} pageInfo={vocabularies.pageInfo} />}
      {dialog?.kind === 'create' && <NameDialog title="New vocabulary" builtinTags={model.data?.modelInfo.builtinTagCount} onClose={close} onDone={done} />}
      {dialog?.kind === 'rename' && <NameDialog title={`Rename ${dialog.vocab.name}`} vocab={dialog.vocab} onClose={close} onDone={done} />}
      {dialog?.kind === 'delete' && (
        <ConfirmDialog
          title={`Delete ${dialog.vocab.name}?`}
          consequence={`Its ${dialog.vocab.stats.tags} tags and all their descriptions will be deleted for good. Clients tagging against it will get NOT_FOUND.`}
          action="Delete vocabulary"
          onConfirm={() => void remove(dialog.vocab)}
          onClose={close}
        />
      )}
    </section>
  );
}

/** Create (name, empty or built-in tags) or rename. */
function NameDialog(props: { title: string; vocab?: Vocab; builtinTags?: number | undefined; onClose: () => void; onDone: () => void }) {
  const { call } = useSession();
  const [name, setName] = useState(props.vocab?.name ?? '');
  const [fromBuiltin, setFromBuiltin] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      if (props.vocab) await call(RenameVocabularyMutation, { id: props.vocab.id, name });
      else await call(CreateVocabularyMutation, { input: { name, fromBuiltin } });
      props.onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <form onSubmit={submit}>
        <label>
          Name
          <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        {!props.vocab && (
          <fieldset>
            <legend>Start with</legend>
            <label className="inline">
              <input type="radio" name="seed" checked={!fromBuiltin} onChange={() => setFromBuiltin(false)} />
              No tags
            </label>
            <label className="inline">
              <input type="radio" name="seed" checked={fromBuiltin} onChange={() => setFromBuiltin(true)} />
              The model's built-in tags{props.builtinTags ? ` (${props.builtinTags.toLocaleString('en')})` : ''}
            </label>
          </fieldset>
        )}
        <ErrorNote error={error} />
        <div className="actions">
          <button type="submit" disabled={busy}>
            {props.vocab ? 'Rename' : busy ? 'Creating…' : 'Create vocabulary'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
