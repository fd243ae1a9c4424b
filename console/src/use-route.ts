import { useEffect, useState } from 'react';
import { parseRoute, type Route } from './route.ts';

/** The current route, following the location's hash. */
export function useRoute(): Route | null {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return parseRoute(hash);
}
