import { useState, type FormEvent } from 'react';
import { useSession } from '../api/session.tsx';
import { ErrorNote } from '../ui/error-note.tsx';

export function SignIn() {
  const session = useSession();
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.signIn(key.trim(), remember);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <main className="sign-in" id="main">
      <h1>Omnitag console</h1>
      {session.notice && (
        <p className="notice" role="status">
          {session.notice}
        </p>
      )}
      <form onSubmit={submit}>
        <label>
          API key
          <input type="password" autoComplete="off" required value={key} onChange={(e) => setKey(e.target.value)} autoFocus />
        </label>
        <label className="inline">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} />
          Remember on this device
        </label>
        <p className="hint">
          {remember ? 'The key stays in this browser until you sign out.' : 'The key is forgotten when this tab closes.'}
        </p>
        <button type="submit" disabled={busy || !key.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <ErrorNote error={error} />
      </form>
    </main>
  );
}
