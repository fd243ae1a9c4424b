import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { useMemo } from 'react';
import { useSession } from '../api/session';

const START = `# The signed-in key is sent with every request (it is never shown here).
query WhoAmI {
  viewer { tenant { name } role keyPrefix }
}
`;

/** GraphiQL against /graphql with the signed-in key. */
export default function Explorer() {
  const session = useSession();
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
  return (
    <div className="explorer">
      <h1 className="visually-hidden">API explorer</h1>
      <GraphiQL fetcher={fetcher} defaultQuery={session.identity?.kind === 'platform' ? '{ tenants(first: 10) { totalCount edges { node { name slug } } } }\n' : START} />
    </div>
  );
}
