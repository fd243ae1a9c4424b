import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Who the work in progress is done for, so that shared resources (the database's connections)
 * can take turns between callers instead of serving whoever asked most. The HTTP layer opens a
 * scope per request and names its tenant once the key is verified; everything that request
 * awaits sees the same scope. Work outside any scope (background jobs) shares one key.
 */
interface Scope {
  key: string | undefined;
}

const storage = new AsyncLocalStorage<Scope>();

/** Runs `fn` in a new scope without a key yet (see `setFairnessKey`). */
export function runInFairnessScope<T>(fn: () => T): T {
  return storage.run({ key: undefined }, fn);
}

/** Names the caller of the current scope; outside a scope it does nothing. */
export function setFairnessKey(key: string): void {
  const scope = storage.getStore();
  if (scope) scope.key = key;
}

/** The caller of the work in progress, when one was named. */
export function currentFairnessKey(): string | undefined {
  return storage.getStore()?.key;
}
