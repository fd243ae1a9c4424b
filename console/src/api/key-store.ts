/**
 * Where the signed-in key is kept: sessionStorage (gone when the tab closes) unless the user asked
 * to be remembered on this device (localStorage). Never in a URL, never logged.
 */
const SLOT = 'omnitag.console.key';

export function loadKey(): string | null {
  return sessionStorage.getItem(SLOT) ?? localStorage.getItem(SLOT);
}

export function saveKey(key: string, remember: boolean): void {
  forgetKey();
  (remember ? localStorage : sessionStorage).setItem(SLOT, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(SLOT);
  localStorage.removeItem(SLOT);
}
