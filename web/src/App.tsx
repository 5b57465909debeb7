import { lazy, Suspense } from 'react';

import { AuthProvider, useAuth } from './auth';
import { AppHeader } from './components/AppHeader';
import { IdentityProvider } from './identity';
import { DocumentsPage } from './pages/DocumentsPage';
import { SignInPage } from './pages/SignInPage';
import { Link, parseRoute, usePathname, useDocumentTitle } from './router';

// The editor (ProseMirror, Tiptap, Yjs) loads only when a document is opened.
const EditorPage = lazy(() => import('./pages/EditorPage'));

export function App() {
  return (
    <AuthProvider>
      <Gate />
    </AuthProvider>
  );
}

/** Nothing but the sign-in and sign-up pages until someone is signed in. */
function Gate() {
  const { state } = useAuth();
  const route = parseRoute(usePathname());
  if (state.kind === 'loading') return <div className="page-loading">Loading…</div>;
  if (state.kind === 'signed-out') {
    return <SignInPage mode={route.name === 'signup' ? 'signup' : 'signin'} notice={state.reason} />;
  }
  if (route.name === 'signin' || route.name === 'signup') {
    return (
      <IdentityProvider>
        <DocumentsPage />
      </IdentityProvider>
    );
  }
  return (
    <IdentityProvider>
      {route.name === 'documents' && <DocumentsPage />}
      {route.name === 'editor' && (
        <Suspense fallback={<div className="page-loading">Loading editor…</div>}>
          <EditorPage key={route.id} docId={route.id} />
        </Suspense>
      )}
      {route.name === 'not-found' && <NotFound />}
    </IdentityProvider>
  );
}

function NotFound() {
  useDocumentTitle('Not found — Quire');
  return (
    <div className="page">
      <AppHeader />
      <main id="main" className="empty">
        <h1>Page not found</h1>
        <Link href="/" className="button button-primary">
          Go to your documents
        </Link>
      </main>
    </div>
  );
}
