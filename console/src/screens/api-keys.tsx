import { useState, type FormEvent } from 'react';
import type { Role } from '../generated/graphql.ts';
import { ApiKeysQuery, CreateApiKeyMutation, RevokeApiKeyMutation } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { ConfirmDialog, Dialog } from '../ui/dialog.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { when } from '../ui/format.ts';
import { SecretOnce } from '../ui/secret-once.tsx';
import { useLoad } from '../ui/use-load.ts';

type Key = { id: string; name: string; prefix: string };

export function ApiKeys() {
  const { call, identity } = useSession();
  const keys = useLoad(() => call(ApiKeysQuery, {}), []);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<Key | null>(null);
  const [error, setError] = useState<unknown>(null);
  const ownPrefix = identity?.kind === 'tenant' ? identity.keyPrefix : null;

  const revoke = async (key: Key) => {
    setRevoking(null);
    try {
      await call(RevokeApiKeyMutation, { id: key.id });
      keys.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <button type="button" onClick={() => setCreating(true)}>
        New key
      </button>
      <ErrorNote error={keys.error ?? error} />
      {keys.data && (
        <table>
          <caption className="visually-hidden">API keys, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Prefix</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {keys.data.apiKeys.map((k) => (
              <tr key={k.id} data-key={k.name}>
                <td>{k.name}</td>
                <td>{k.role}</td>
                <td>
                  <code>{k.prefix}</code>
                  {k.prefix === ownPrefix && <span className="badge">this console</span>}
                </td>
                <td>{when(k.createdAt)}</td>
                <td>{when(k.lastUsedAt)}</td>
                <td>
                  {k.revokedAt ? (
                    `revoked ${when(k.revokedAt)}`
                  ) : (
                    <button type="button" className="danger" onClick={() => setRevoking(k)}>
                      Revoke<span className="visually-hidden"> {k.name}</span>
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {creating && (
        <CreateKey
          onClose={() => setCreating(false)}
          onCreated={(s) => {
            setCreating(false);
            setSecret(s);
            keys.reload();
          }}
        />
      )}
      {secret && (
        <Dialog title="New API key" onClose={() => setSecret(null)}>
          <SecretOnce secret={secret} label="New key" />
          <div className="actions">
            <button type="button" onClick={() => setSecret(null)}>
              Done
            </button>
          </div>
        </Dialog>
      )}
      {revoking && (
        <ConfirmDialog
          title={`Revoke ${revoking.name}?`}
          consequence={`Every client using the key ${revoking.prefix}… will be refused (UNAUTHENTICATED) from its next request. This cannot be undone.${revoking.prefix === ownPrefix ? ' This console uses it too and will sign out.' : ''}`}
          action="Revoke key"
          onConfirm={() => void revoke(revoking)}
          onClose={() => setRevoking(null)}
        />
      )}
    </section>
  );
}

function CreateKey({ onClose, onCreated }: { onClose: () => void; onCreated: (secret: string) => void }) {
  const { call } = useSession();
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('CLIENT');
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const { createApiKey } = await call(CreateApiKeyMutation, { input: { name, role } });
      onCreated(createApiKey.secret);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title="New API key" onClose={onClose}>
      <form onSubmit={submit}>
        <label>
          What the key is for
          <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <fieldset>
          <legend>Role</legend>
          <label className="inline">
            <input type="radio" name="role" checked={role === 'CLIENT'} onChange={() => setRole('CLIENT')} />
            CLIENT: tags images, reads vocabularies
          </label>
          <label className="inline">
            <input type="radio" name="role" checked={role === 'ADMIN'} onChange={() => setRole('ADMIN')} />
            ADMIN: also edits vocabularies and manages keys
          </label>
        </fieldset>
        <ErrorNote error={error} />
        <div className="actions">
          <button type="submit">Create key</button>
        </div>
      </form>
    </Dialog>
  );
}
