/** The screen named by the location's hash (`#/vocabularies/<id>`): nothing secret ever goes there. */
export type Route =
  | { screen: 'vocabularies' }
  | { screen: 'vocabulary'; id: string }
  | { screen: 'images'; id: string }
  | { screen: 'try' }
  | { screen: 'keys' }
  | { screen: 'explorer' }
  | { screen: 'tenants' };

export function parseRoute(hash: string): Route | null {
  const [first, second, third] = hash.replace(/^#\/?/, '').split('/');
  switch (first) {
    case 'vocabularies':
      if (!second) return { screen: 'vocabularies' };
      if (third === 'images') return { screen: 'images', id: decodeURIComponent(second) };
      return third ? null : { screen: 'vocabulary', id: decodeURIComponent(second) };
    case 'try':
    case 'keys':
    case 'explorer':
    case 'tenants':
      return { screen: first };
    default:
      return null;
  }
}

export function href(r: Route): string {
  if (r.screen === 'vocabulary') return `#/vocabularies/${encodeURIComponent(r.id)}`;
  if (r.screen === 'images') return `#/vocabularies/${encodeURIComponent(r.id)}/images`;
  return `#/${r.screen}`;
}

/** The menu entry a screen sits under: one vocabulary and its images are under "Vocabularies". */
export const menuScreen = (r: Route): Route['screen'] => (r.screen === 'vocabulary' || r.screen === 'images' ? 'vocabularies' : r.screen);
