import { lazy, Suspense, useEffect } from 'react';
import { useSession, type Identity } from './api/session.tsx';
import { href, menuScreen, type Route } from './route.ts';
import { useRoute } from './use-route.ts';
import { ApiKeys } from './screens/api-keys.tsx';
import { SignIn } from './screens/sign-in.tsx';
import { Tenants } from './screens/tenants.tsx';
import { Images } from './screens/images.tsx';
import { TryIt } from './screens/try-it.tsx';
import { VocabularyDetail } from './screens/vocabulary.tsx';
import { Vocabularies } from './screens/vocabularies.tsx';

// GraphiQL is large; it loads only when the explorer is opened.
const Explorer = lazy(() => import('./screens/explorer.tsx'));

/** The screens each kind of key may open, in menu order. */
function screensFor(who: Identity): { route: Route; label: string }[] {
  if (who.kind === 'platform') return [{ route: { screen: 'tenants' }, label: 'Tenants' }, { route: { screen: 'explorer' }, label: 'API explorer' }];
  return [
    { route: { screen: 'vocabularies' }, label: 'Vocabularies' },
    { route: { screen: 'try' }, label: 'Try it' },
    ...(who.role === 'ADMIN' ? [{ route: { screen: 'keys' } as Route, label: 'API keys' }] : []),
    { route: { screen: 'explorer' }, label: 'API explorer' },
  ];
}

export function App() {
  const session = useSession();
  const route = useRoute();
  const who = session.identity;
  const screens = who ? screensFor(who) : [];
  const allowed = route && screens.some((s) => s.route.screen === menuScreen(route));

  useEffect(() => {
    if (who && !allowed) location.replace(href(screens[0]!.route));
  }, [who, allowed, screens]);

  if (!who) return <SignIn />;
  if (!route || !allowed) return null;
  const admin = who.kind === 'tenant' && who.role === 'ADMIN';
  return (
    <>
      <a className="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Omnitag</span>
        <nav aria-label="Screens">
          <ul>
            {screens.map((s) => (
              <li key={s.label}>
                <a href={href(s.route)} aria-current={s.route.screen === menuScreen(route) ? 'page' : undefined}>
                  {s.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who" aria-label="Signed in as">
          {who.kind === 'platform' ? (
            <span>Platform admin</span>
          ) : (
            <span>
              <span data-testid="tenant">{who.tenant.name}</span> · <span data-testid="role">{who.role}</span> · key <code data-testid="key-prefix">{who.keyPrefix}</code>
            </span>
          )}
          <button type="button" onClick={() => session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Screen route={route} admin={admin} />
      </main>
    </>
  );
}

function Screen({ route, admin }: { route: Route; admin: boolean }) {
  switch (route.screen) {
    case 'tenants':
      return <Tenants />;
    case 'vocabularies':
      return <Vocabularies admin={admin} />;
    case 'vocabulary':
      return <VocabularyDetail id={route.id} admin={admin} />;
    case 'images':
      return <Images vocabularyId={route.id} />;
    case 'try':
      return <TryIt />;
    case 'keys':
      return <ApiKeys />;
    case 'explorer':
      return (
        <Suspense fallback={<p role="status">Loading the explorer…</p>}>
          <Explorer />
        </Suspense>
      );
  }
}
