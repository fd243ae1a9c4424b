/** `zh: 算盘; fr: boulier` ⇄ localised names. */
export const formatNames = (names: readonly { language: string; name: string }[]): string => names.map((n) => `${n.language}: ${n.name}`).join('; ');
export function parseNames(text: string): { language: string; name: string }[] {
  return text
    .split(';')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const at = part.indexOf(':');
      return { language: part.slice(0, at).trim().toLowerCase(), name: part.slice(at + 1).trim() };
    });
}
