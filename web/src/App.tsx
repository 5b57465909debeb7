import { lazy, Suspense } from 'react';

import { AppHeader } from './components/AppHeader';
import { IdentityProvider } from './identity';
import { DocumentsPage } from './pages/DocumentsPage';
import { Link, parseRoute, usePathname, useDocumentTitle } from './router';

// The editor (ProseMirror, Tiptap, Yjs) loads only when a document is opened.
const EditorPage = lazy(() => import('./pages/EditorPage'));

export function App() {
  const route = parseRoute(usePathname());
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
