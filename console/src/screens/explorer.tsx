import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { useEffect, useMemo, useRef } from 'react';
import { useSession } from '../api/session.tsx';

const TENANT_START = `# The signed-in key is sent with every request (it is never shown here).
query WhoAmI {
  viewer { tenant { name } role keyPrefix }
}
`;
const PLATFORM_START = `# The platform admin key is sent with every request (it is never shown here).
query Tenants {
  tenants(first: 10) { totalCount edges { node { name slug } } }
}
`;

/**
 * GraphiQL's own markup leaves a few things out that assistive technology needs: names for its
 * editors' text areas, keyboard access to their scrolling regions, and a tab strip whose tabs
 * hold buttons (presented here as the plain group of buttons it works as). Filled in as it renders.
 */
function completeMarkup(root: HTMLElement): void {
  for (const area of root.querySelectorAll<HTMLTextAreaElement>('textarea:not([aria-label])')) {
    const name = area.closest('.graphiql-query-editor') ? 'Query editor' : area.readOnly ? 'Response' : area.closest('.graphiql-editor-tool') ? 'Variables and headers editor' : 'Editor';
    area.setAttribute('aria-label', name);
  }
  for (const scroller of root.querySelectorAll('.CodeMirror-scroll:not([tabindex="0"])')) scroller.setAttribute('tabindex', '0');
  for (const el of root.querySelectorAll('.graphiql-tabs[role="tablist"], .graphiql-tab[role="tab"]')) {
    el.setAttribute('role', 'none');
    el.removeAttribute('aria-selected');
  }
}

/** GraphiQL against /graphql with the signed-in key. */
export default function Explorer() {
  const session = useSession();
  const root = useRef<HTMLDivElement>(null);
  const fetcher = useMemo(
    () => async (params: unknown) => {
      const key = session.key();
      const res = await fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify(params),
      });
      return res.json();
    },
    [session],
  );
  useEffect(() => {
    const el = root.current!;
    completeMarkup(el);
    const watcher = new MutationObserver(() => completeMarkup(el));
    watcher.observe(el, { subtree: true, childList: true, attributes: true, attributeFilter: ['role', 'tabindex'] });
    return () => watcher.disconnect();
  }, []);
  return (
    <div className="explorer" ref={root}>
      <h1 className="visually-hidden">API explorer</h1>
      <GraphiQL fetcher={fetcher} defaultQuery={session.identity?.kind === 'platform' ? PLATFORM_START : TENANT_START} />
    </div>
  );
}
