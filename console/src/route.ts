import { useEffect, useState } from 'react';

/** The screen named by the location's hash (`#/vocabularies/<id>`): nothing secret ever goes there. */
export type Route =
  | { screen: 'vocabularies' }
  | { screen: 'vocabulary'; id: string }
  | { screen: 'try' }
  | { screen: 'keys' }
  | { screen: 'explorer' }
  | { screen: 'tenants' };

export function parseRoute(hash: string): Route | null {
  const [first, second] = hash.replace(/^#\/?/, '').split('/');
  switch (first) {
    case 'vocabularies':
      return second ? { screen: 'vocabulary', id: decodeURIComponent(second) } : { screen: 'vocabularies' };
    case 'try':
    case 'keys':
    case 'explorer':
    case 'tenants':
      return { screen: first };
    default:
      return null;
  }
}

export const href = (r: Route): string => (r.screen === 'vocabulary' ? `#/vocabularies/${encodeURIComponent(r.id)}` : `#/${r.screen}`);

export function useRoute(): Route | null {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return parseRoute(hash);
}
