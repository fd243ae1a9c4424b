import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react';
import type { Role, TypedDocumentString } from '../generated/graphql.ts';
import { ApiError, request } from './client.ts';
import { forgetKey, loadKey, saveKey } from './key-store.ts';
import { PlatformProbeQuery, ViewerQuery } from './operations.ts';

/** Who the signed-in key belongs to. */
export type Identity =
  | { kind: 'platform' }
  | { kind: 'tenant'; role: Role; keyPrefix: string; tenant: { id: string; name: string; slug: string } };

export interface Session {
  identity: Identity | null;
  /** Why the last session ended, when the server ended it (a revoked key). */
  notice: string | null;
  signIn(key: string, remember: boolean): Promise<void>;
  signOut(notice?: string): void;
  /** Sends an operation with the signed-in key; UNAUTHENTICATED signs the console out. */
  call<R, V>(document: TypedDocumentString<R, V>, variables: V, files?: Map<string, File>): Promise<R>;
  /** The key itself, for the API explorer's requests only. */
  key(): string | null;
}

const SessionContext = createContext<Session | null>(null);

/** Asks the server who a key belongs to; tenant keys answer `viewer`, the platform key `tenants`. */
async function identify(key: string): Promise<Identity> {
  try {
    const { viewer } = await request(ViewerQuery, {}, key);
    return { kind: 'tenant', role: viewer.role, keyPrefix: viewer.keyPrefix, tenant: viewer.tenant };
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 'FORBIDDEN') throw err;
    await request(PlatformProbeQuery, {}, key);
    return { kind: 'platform' };
  }
}

export function SessionProvider({ initial, children }: { initial: Identity | null; children: ReactNode }) {
  const [identity, setIdentity] = useState<Identity | null>(initial);
  const [notice, setNotice] = useState<string | null>(null);

  const signOut = useCallback((why?: string) => {
    forgetKey();
    setIdentity(null);
    setNotice(why ?? null);
  }, []);

  const session = useMemo<Session>(
    () => ({
      identity,
      notice,
      async signIn(key, remember) {
        const who = await identify(key);
        saveKey(key, remember);
        setNotice(null);
        setIdentity(who);
      },
      signOut,
      async call(document, variables, files) {
        try {
          return await request(document, variables, loadKey(), files);
        } catch (err) {
          if (err instanceof ApiError && err.code === 'UNAUTHENTICATED') {
            signOut('The server no longer accepts this key (it was revoked or has expired). Sign in with a valid key.');
          }
          throw err;
        }
      },
      key: loadKey,
    }),
    [identity, notice, signOut],
  );
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

/** On load: the remembered key's identity, or null (no key, or the server refused it). */
export async function restoreIdentity(): Promise<Identity | null> {
  const key = loadKey();
  if (!key) return null;
  try {
    return await identify(key);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'UNAUTHENTICATED') forgetKey();
    return null;
  }
}
