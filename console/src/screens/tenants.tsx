import { useState, type FormEvent } from 'react';
import { CreateApiKeyMutation, CreateTenantMutation, TenantsQuery } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { Dialog } from '../ui/dialog.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { Pager, usePages } from '../ui/pages.tsx';
import { when } from '../ui/format.ts';
import { SecretOnce } from '../ui/secret-once.tsx';
import { useLoad } from '../ui/use-load.ts';

const PAGE = 20;

/** The platform admin's screen: tenants page by page, a new tenant, a tenant's first ADMIN key. */
export function Tenants() {
  const { call } = useSession();
  const pages = usePages();
  const { after } = pages;
  const page = useLoad(() => call(TenantsQuery, { first: PAGE, after }), [after]);
  const [creating, setCreating] = useState(false);
  const [issued, setIssued] = useState<{ tenant: string; secret: string } | null>(null);
  const [error, setError] = useState<unknown>(null);

  const issueKey = async (tenantId: string, tenant: string) => {
    setError(null);
    try {
      const { createApiKey } = await call(CreateApiKeyMutation, { input: { name: 'First admin key', role: 'ADMIN', tenantId } });
      setIssued({ tenant, secret: createApiKey.secret });
    } catch (err) {
      setError(err);
    }
  };

  const tenants = page.data?.tenants;
  return (
    <section aria-labelledby="tenants-title">
      <h1 id="tenants-title">Tenants</h1>
      <button type="button" onClick={() => setCreating(true)}>
        New tenant
      </button>
      <ErrorNote error={page.error ?? error} />
      {tenants && (
        <>
          <p>
            {tenants.totalCount} tenants · page {pages.number} of {Math.max(1, Math.ceil(tenants.totalCount / PAGE))}
          </p>
          <table>
            <caption className="visually-hidden">Tenants, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Slug</th>
                <th scope="col">Created</th>
                <th scope="col">Keys</th>
              </tr>
            </thead>
            <tbody>
              {tenants.edges.map(({ node }) => (
                <tr key={node.id}>
                  <td>{node.name}</td>
                  <td>
                    <code>{node.slug}</code>
                  </td>
                  <td>{when(node.createdAt)}</td>
                  <td>
                    <button type="button" onClick={() => void issueKey(node.id, node.name)}>
                      Issue first ADMIN key<span className="visually-hidden"> for {node.name}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager pages={pages} pageInfo={tenants.pageInfo} />
        </>
      )}
      {creating && (
        <CreateTenant
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            pages.reset();
            page.reload();
          }}
        />
      )}
      {issued && (
        <Dialog title={`ADMIN key for ${issued.tenant}`} onClose={() => setIssued(null)}>
          <SecretOnce secret={issued.secret} label="New ADMIN key" />
          <div className="actions">
            <button type="button" onClick={() => setIssued(null)}>
              Done
            </button>
          </div>
        </Dialog>
      )}
    </section>
  );
}

function CreateTenant({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const { call } = useSession();
  const [name, setName] = useState('');
  const [slug, setSlug] = useState('');
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await call(CreateTenantMutation, { input: { name, ...(slug ? { slug } : {}) } });
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Dialog title="New tenant" onClose={onClose}>
      <form onSubmit={submit}>
        <label>
          Name
          <input required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Slug (optional: made from the name)
          <input pattern="[a-z0-9]+(-[a-z0-9]+)*" value={slug} onChange={(e) => setSlug(e.target.value)} />
        </label>
        <ErrorNote error={error} />
        <div className="actions">
          <button type="submit">Create tenant</button>
        </div>
      </form>
    </Dialog>
  );
}
