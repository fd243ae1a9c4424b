import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { restoreIdentity, SessionProvider } from './api/session.tsx';
import { App } from './app.tsx';
import './styles.css';

const identity = await restoreIdentity();
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <SessionProvider initial={identity}>
      <App />
    </SessionProvider>
  </StrictMode>,
);
