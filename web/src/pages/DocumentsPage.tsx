//! `/`: every document, newest edit first, with who is in it right now.

import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';

import { ApiError, UNTITLED, accountUsage, createDocument, deleteDocument, displayTitle, forgetDocument, listDocuments, rememberDocument, renameDocument, type DocumentMeta, type Presence } from '../api';
import { verifiedPeople } from '../collab/awareness';
import { clearLocalCopy } from '../collab/localCopy';
import { AvatarStack } from '../components/Avatars';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { Icon } from '../components/Icon';
import { AppHeader } from '../components/AppHeader';
import { absoluteTime, relativeTime } from '../components/time';
import { usageWarnings } from '../quota';
import { documentPath, Link, navigate, useDocumentTitle } from '../router';

type LoadState = { kind: 'loading' } | { kind: 'ready'; documents: DocumentMeta[] } | { kind: 'error'; message: string };

const REFRESH_MS = 15_000;

export function DocumentsPage() {
  useDocumentTitle('Documents — Quire');
  const [query, setQuery] = useState('');
  const [state, setState] = useState<LoadState>({ kind: 'loading' });
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [createError, setCreateError] = useState<string | null>(null);
  const [quotaWarnings, setQuotaWarnings] = useState<string[]>([]);
  const [renaming, setRenaming] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<DocumentMeta | null>(null);
  const [deleteBusy, setDeleteBusy] = useState(false);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const requestSeq = useRef(0);

  const refresh = useCallback(async (q: string) => {
    const seq = ++requestSeq.current;
    try {
      const documents = await listDocuments(q);
      if (seq !== requestSeq.current) return; // a newer filter is in flight
      setState({ kind: 'ready', documents });
    } catch (error) {
      if (seq !== requestSeq.current) return;
      setState((prev) =>
        prev.kind === 'ready' ? prev : { kind: 'error', message: error instanceof ApiError ? error.message : 'Could not load documents.' },
      );
    }
  }, []);

  // How much of the account's quotas is used, shown only when close.
  const refreshUsage = useCallback(async () => {
    try {
      const { usage, quotas } = await accountUsage();
      setQuotaWarnings(usageWarnings(usage, quotas));
    } catch {
      // Not worth an error of its own: a refused create still says why.
    }
  }, []);
  useEffect(() => void refreshUsage(), [refreshUsage]);

  // Filter as you type, debounced.
  useEffect(() => {
    const handle = setTimeout(() => void refresh(query), query ? 200 : 0);
    return () => clearTimeout(handle);
  }, [query, refresh]);

  // Keep "last edited" and presence fresh while the page is visible.
  useEffect(() => {
    const tick = () => {
      if (document.visibilityState === 'visible') void refresh(query);
    };
    const handle = setInterval(tick, REFRESH_MS);
    window.addEventListener('focus', tick);
    return () => {
      clearInterval(handle);
      window.removeEventListener('focus', tick);
    };
  }, [query, refresh]);

  const onCreate = async () => {
    setCreating(true);
    setNotice(null);
    setCreateError(null);
    try {
      const doc = await createDocument();
      rememberDocument(doc);
      navigate(documentPath(doc.id), { state: { fresh: true } });
    } catch (error) {
      // The server's words: a quota refusal says which quota and what to do.
      setCreateError(error instanceof ApiError ? error.message : 'Could not create a document.');
      setCreating(false);
      void refreshUsage();
    }
  };

  const onRenamed = (doc: DocumentMeta) => {
    rememberDocument(doc);
    setRenaming(null);
    setState((s) => (s.kind === 'ready' ? { ...s, documents: s.documents.map((d) => (d.id === doc.id ? { ...d, ...doc } : d)) } : s));
  };

  const onConfirmDelete = async () => {
    if (!deleting) return;
    setDeleteBusy(true);
    setDeleteError(null);
    try {
      await deleteDocument(deleting.id);
      forgetDocument(deleting.id);
      void clearLocalCopy(deleting.id);
      const id = deleting.id;
      setState((s) => (s.kind === 'ready' ? { ...s, documents: s.documents.filter((d) => d.id !== id) } : s));
      setNotice(`Deleted “${displayTitle(deleting.title)}”.`);
      setCreateError(null);
      setDeleting(null);
      void refreshUsage();
    } catch (error) {
      setDeleteError(error instanceof ApiError ? error.message : 'Could not delete the document.');
    } finally {
      setDeleteBusy(false);
    }
  };

  const documents = state.kind === 'ready' ? state.documents : [];

  return (
    <div className="page">
      <AppHeader />
      <main className="documents" id="main">
        <div className="documents-head">
          <h1>Documents</h1>
          <button type="button" className="button button-primary" onClick={onCreate} disabled={creating} data-testid="new-document">
            <Icon name="plus" />
            {creating ? 'Creating…' : 'New document'}
          </button>
        </div>

        <div className="search">
          <Icon name="search" />
          <label htmlFor="filter" className="visually-hidden">
            Filter documents by title
          </label>
          <input
            id="filter"
            className="input search-input"
            type="search"
            placeholder="Filter by title"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            data-testid="filter"
          />
        </div>

        <p className="notice" role="status" aria-live="polite">
          {notice}
        </p>
        {createError && (
          <div className="banner banner-error" role="alert" data-testid="create-error">
            <Icon name="warning" />
            <span>{createError}</span>
          </div>
        )}
        {quotaWarnings.length > 0 && (
          <p className="quota-usage" data-testid="quota-usage">
            {quotaWarnings.join(' ')}
          </p>
        )}

        {state.kind === 'loading' && <p className="muted">Loading documents…</p>}
        {state.kind === 'error' && (
          <div className="banner banner-error" role="alert">
            <Icon name="warning" />
            <span>{state.message}</span>
            <button type="button" className="button" onClick={() => void refresh(query)}>
              Try again
            </button>
          </div>
        )}
        {state.kind === 'ready' && documents.length === 0 && (
          <div className="empty">
            <Icon name="doc" className="empty-icon" />
            {query ? (
              <p>No document title matches “{query}”.</p>
            ) : (
              <>
                <p>No documents yet.</p>
                <button type="button" className="button button-primary" onClick={onCreate} disabled={creating}>
                  Create your first document
                </button>
              </>
            )}
          </div>
        )}
        {documents.length > 0 && (
          <ul className="doc-list" aria-label="Documents">
            <li className="doc-list-header" aria-hidden="true">
              <span>Title</span>
              <span>Last edited</span>
              <span>In it now</span>
              <span />
            </li>
            {documents.map((doc) => (
              <li key={doc.id} className="doc-row" data-testid="doc-row" data-doc-id={doc.id}>
                {renaming === doc.id ? (
                  <RenameForm doc={doc} onDone={onRenamed} onCancel={() => setRenaming(null)} />
                ) : (
                  <Link href={documentPath(doc.id)} className="doc-title" onClick={() => rememberDocument(doc)}>
                    <Icon name="doc" />
                    <span className={doc.title.trim() ? undefined : 'muted'}>{displayTitle(doc.title)}</span>
                  </Link>
                )}
                <time className="doc-time" dateTime={new Date(doc.updatedAt).toISOString()} title={absoluteTime(doc.updatedAt)}>
                  {relativeTime(doc.updatedAt)}
                </time>
                <span className="doc-present">
                  <PresentNow present={doc.present} />
                </span>
                <span className="doc-actions">
                  <button
                    type="button"
                    className="icon-button"
                    aria-label={`Rename ${displayTitle(doc.title)}`}
                    title="Rename"
                    onClick={() => setRenaming(doc.id)}
                  >
                    <Icon name="pencil" />
                  </button>
                  <button
                    type="button"
                    className="icon-button icon-button-danger"
                    aria-label={`Delete ${displayTitle(doc.title)}`}
                    title="Delete"
                    onClick={() => {
                      setDeleteError(null);
                      setDeleting(doc);
                    }}
                  >
                    <Icon name="trash" />
                  </button>
                </span>
              </li>
            ))}
          </ul>
        )}

        <SharedWithMe query={query} />
      </main>

      <ConfirmDialog
        open={deleting !== null}
        title="Delete this document?"
        confirmLabel="Delete"
        danger
        busy={deleteBusy}
        error={deleteError}
        onConfirm={() => void onConfirmDelete()}
        onCancel={() => setDeleting(null)}
      >
        <p>
          “{displayTitle(deleting?.title)}” will be deleted for everyone, and anyone editing it will be disconnected. This cannot be
          undone.
        </p>
      </ConfirmDialog>
    </div>
  );
}

const ROLE_LABEL = { owner: 'Owner', editor: 'Can edit', commenter: 'Can comment', viewer: 'Can view' } as const;

/** "Shared with me": documents other people shared with this account. */
function SharedWithMe({ query }: { query: string }) {
  const [documents, setDocuments] = useState<DocumentMeta[] | null>(null);
  useEffect(() => {
    let cancelled = false;
    const load = () =>
      listDocuments(query, 'shared').then(
        (docs) => {
          if (!cancelled) setDocuments(docs);
        },
        () => undefined,
      );
    const handle = setTimeout(() => void load(), query ? 200 : 0);
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, REFRESH_MS);
    window.addEventListener('focus', load);
    return () => {
      cancelled = true;
      clearTimeout(handle);
      clearInterval(timer);
      window.removeEventListener('focus', load);
    };
  }, [query]);

  return (
    <section className="shared-with-me" aria-labelledby="shared-heading">
      <h2 id="shared-heading">Shared with me</h2>
      {documents === null ? (
        <p className="muted">Loading…</p>
      ) : documents.length === 0 ? (
        <p className="muted" data-testid="shared-empty">
          Nothing has been shared with you yet.
        </p>
      ) : (
        <ul className="doc-list" aria-label="Shared with me">
          {documents.map((doc) => (
            <li key={doc.id} className="doc-row" data-testid="shared-row" data-doc-id={doc.id}>
              <Link href={documentPath(doc.id)} className="doc-title" onClick={() => rememberDocument(doc)}>
                <Icon name="doc" />
                <span className={doc.title.trim() ? undefined : 'muted'}>{displayTitle(doc.title)}</span>
              </Link>
              <time className="doc-time" dateTime={new Date(doc.updatedAt).toISOString()} title={absoluteTime(doc.updatedAt)}>
                {relativeTime(doc.updatedAt)}
              </time>
              <span className="doc-present">
                <PresentNow present={doc.present} />
              </span>
              <span className="doc-role" data-testid="shared-role">
                {doc.role ? ROLE_LABEL[doc.role] : ''}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function RenameForm({ doc, onDone, onCancel }: { doc: DocumentMeta; onDone(doc: DocumentMeta): void; onCancel(): void }) {
  const [title, setTitle] = useState(doc.title);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => inputRef.current?.select(), []);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    try {
      onDone(await renameDocument(doc.id, title.trim() || UNTITLED));
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Could not rename.');
      setBusy(false);
    }
  };

  return (
    <form className="rename-form" onSubmit={submit}>
      <label className="visually-hidden" htmlFor={`rename-${doc.id}`}>
        New title
      </label>
      <input
        id={`rename-${doc.id}`}
        ref={inputRef}
        className="input"
        value={title}
        maxLength={200}
        onChange={(e) => setTitle(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') onCancel();
        }}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `rename-error-${doc.id}` : undefined}
        data-testid="rename-input"
      />
      <button type="submit" className="button button-primary" disabled={busy}>
        Save
      </button>
      <button type="button" className="button" onClick={onCancel}>
        Cancel
      </button>
      {error && (
        <span id={`rename-error-${doc.id}`} className="form-error" role="alert">
          {error}
        </span>
      )}
    </form>
  );
}

/** Who is in a document now: the accounts the server lists, one avatar each. */
function PresentNow({ present }: { present: Presence[] }) {
  const people = verifiedPeople(present);
  return people.length > 0 ? <AvatarStack people={people} size="sm" max={3} label="In this document now" /> : <span className="muted">—</span>;
}
