//! `/d/{id}`: one document. Owns the CollabSession's lifetime; the editor,
//! title, presence and save state all hang off it.

import { useEffect, useRef, useState } from 'react';

import { ApiError, canEdit, displayTitle, getDocument, me, recalledTitle, redeemLink, refreshSession, rememberDocument, renameDocument, UNTITLED, type Role } from '../api';
import { usePeers, useSaveState } from '../collab/react';
import { CollabSession } from '../collab/session';
import { AppHeader } from '../components/AppHeader';
import { AvatarStack } from '../components/Avatars';
import { Icon } from '../components/Icon';
import { SaveIndicator } from '../components/SaveIndicator';
import { ShareDialog } from '../components/ShareDialog';
import { CollaborativeEditor } from '../editor/CollaborativeEditor';
import { useIdentity } from '../identity';
import { Link, useDocumentTitle } from '../router';

function wsBase(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

/** A share link's token, from the URL fragment (`#link=…`), which browsers never send to servers. */
function linkToken(): string | null {
  const match = /(?:^#|&)link=([^&]+)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]!) : null;
}

export default function EditorPage({ docId }: { docId: string }) {
  const { identity } = useIdentity();
  const [session, setSession] = useState<CollabSession | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [missing, setMissing] = useState(false);
  const [role, setRole] = useState<Role | undefined>(undefined);
  // Opening a share link grants access first; the socket waits for it.
  const [admitted, setAdmitted] = useState(() => linkToken() === null);
  const identityRef = useRef(identity);
  identityRef.current = identity;

  useEffect(() => {
    const token = linkToken();
    if (token === null) return;
    let cancelled = false;
    redeemLink(docId, token).then(
      (doc) => {
        if (cancelled) return;
        history.replaceState(history.state, '', location.pathname);
        rememberDocument(doc);
        setRole(doc.role);
        setAdmitted(true);
      },
      (error) => {
        if (cancelled) return;
        if (error instanceof ApiError && error.status === 404) setMissing(true);
        else setAdmitted(true); // offline: try the local copy and the socket
      },
    );
    return () => {
      cancelled = true;
    };
  }, [docId]);

  useEffect(() => {
    if (!admitted) return;
    const s = new CollabSession({
      docId,
      wsBase: wsBase(),
      user: identityRef.current,
      // A refused upgrade (expired cookie) looks like a dropped socket.
      beforeReconnect: () => refreshSession(),
    });
    let current = true;
    setSession(s);
    setLoaded(false);
    void s.loaded.then(() => {
      if (current) setLoaded(true);
    });
    void s.start();
    return () => {
      current = false;
      s.destroy();
    };
  }, [docId, admitted]);

  useEffect(() => {
    session?.setUser(identity);
  }, [session, identity]);

  // The server's metadata (title; whether the document exists), refreshed
  // when the window regains focus. Offline, the local copy is trusted.
  const [serverTitle, setServerTitle] = useState<string | null>(null);
  // Once the document was open, a 404 means access was taken away: the
  // session's own message says so, over the (now read-only) document.
  const hadAccess = useRef(false);
  useEffect(() => {
    if (!admitted) return;
    let cancelled = false;
    const load = () =>
      getDocument(docId).then(
        (doc) => {
          if (cancelled) return;
          hadAccess.current = true;
          rememberDocument(doc);
          setServerTitle(doc.title);
          setRole(doc.role);
        },
        (error) => {
          if (cancelled || !(error instanceof ApiError) || error.status !== 404) return;
          if (!hadAccess.current) setMissing(true);
        },
      );
    void load();
    window.addEventListener('focus', load);
    // Every (re)connection may come with other rights (a role raised closes
    // the socket with 4409 and it reconnects): read them again.
    const onSync = (synced: boolean) => {
      if (synced) void load();
    };
    session?.provider.on('sync', onSync);
    return () => {
      cancelled = true;
      window.removeEventListener('focus', load);
      session?.provider.off('sync', onSync);
    };
  }, [docId, admitted, session]);

  if (missing) return <MissingDocument />;
  if (!session) return null;
  return <EditorScreen key={docId} session={session} docId={docId} loaded={loaded} serverTitle={serverTitle} role={role} />;
}

interface ScreenProps {
  session: CollabSession;
  docId: string;
  loaded: boolean;
  serverTitle: string | null;
  role: Role | undefined;
}

function EditorScreen({ session, docId, loaded, serverTitle, role }: ScreenProps) {
  const { identity } = useIdentity();
  const saveState = useSaveState(session);
  const peers = usePeers(session);
  const [sharing, setSharing] = useState(false);
  const deleted = saveState.kind === 'error' && saveState.error.code === 'deleted';
  const refused = saveState.kind === 'error' && saveState.error.code === 'permission-denied';
  // The owner's storage is full: further edits could not be saved either.
  const full = saveState.kind === 'error' && saveState.error.code === 'quota';
  const viewOnly = !canEdit(role);
  const readOnly = deleted || refused || full || viewOnly;

  // Refused by the server: if the sign-in itself ended, this request's 401
  // (that a refresh cannot cure) shows the sign-in page.
  useEffect(() => {
    if (refused) void me().catch(() => undefined);
  }, [refused]);

  return (
    <div className="page editor-page">
      <AppHeader>
        <div className="doc-heading">
          <Link href="/" className="icon-button back-link" aria-label="All documents" title="All documents">
            <Icon name="back" />
          </Link>
          <TitleField docId={docId} serverTitle={serverTitle} readOnly={!canEdit(role)} />
          <SaveIndicator state={saveState} />
        </div>
        {/* You are the chip at the end of the header; these are the others. */}
        <AvatarStack people={peers.filter((p) => !p.isSelf)} label="Also in this document" />
        {role === 'owner' && (
          <button type="button" className="button button-primary share-button" onClick={() => setSharing(true)} data-testid="share-button">
            Share
          </button>
        )}
      </AppHeader>
      {role === 'owner' && <ShareDialog docId={docId} open={sharing} onClose={() => setSharing(false)} />}

      {viewOnly && !deleted && !refused && (
        <div className="banner" role="status" data-testid="read-only-banner">
          <Icon name="doc" />
          <span>View only: you can read this document, but not edit it.</span>
        </div>
      )}

      {saveState.kind === 'error' && (
        <div className={full ? 'banner' : 'banner banner-error'} role="alert" data-testid="session-error" data-code={saveState.error.code}>
          <Icon name="warning" />
          <span>{saveState.error.message}</span>
          {deleted ? (
            <Link href="/" className="button">
              Back to documents
            </Link>
          ) : (
            saveState.error.retryable && (
              <button type="button" className="button" onClick={() => session.retry()}>
                Try again
              </button>
            )
          )}
        </div>
      )}

      <main id="main" className="editor-main">
        {loaded ? (
          <CollaborativeEditor session={session} user={identity} readOnly={readOnly} />
        ) : (
          <div className="paper-wrap">
            <div className="paper paper-loading" aria-busy="true">
              Opening document…
            </div>
          </div>
        )}
      </main>
    </div>
  );
}

/** The title: edited in place, saved with PATCH shortly after typing stops. */
function TitleField({ docId, serverTitle, readOnly }: { docId: string; serverTitle: string | null; readOnly: boolean }) {
  const [title, setTitle] = useState(() => recalledTitle(docId) ?? '');
  const [error, setError] = useState<string | null>(null);
  const saved = useRef(title);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const editing = useRef(false);
  const inputRef = useRef<HTMLInputElement>(null);
  useDocumentTitle(`${displayTitle(title)} — Quire`);

  // A document just created from the list: name it first.
  useEffect(() => {
    if ((history.state as { fresh?: boolean } | null)?.fresh) {
      history.replaceState(null, '');
      inputRef.current?.focus();
      inputRef.current?.select();
    }
  }, []);

  const saving = useRef(false);

  // Take the server's title unless the user is typing or saving one.
  useEffect(() => {
    if (serverTitle === null || editing.current || saving.current) return;
    saved.current = serverTitle;
    setTitle(serverTitle);
  }, [serverTitle]);

  const save = async (value: string) => {
    if (timer.current) clearTimeout(timer.current);
    timer.current = null;
    // The server keeps a title on every document; clearing it means "untitled".
    const next = value.trim() || UNTITLED;
    if (next !== value) setTitle(next);
    if (next === saved.current.trim()) return;
    saving.current = true;
    try {
      const doc = await renameDocument(docId, next);
      saved.current = doc.title;
      rememberDocument(doc);
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError && !e.isNetwork ? e.message : 'Title not saved yet — will retry when back online.');
    } finally {
      saving.current = false;
    }
  };

  // A title typed offline is sent when the network returns.
  useEffect(() => {
    const retry = () => {
      if (error) void save(title);
    };
    window.addEventListener('online', retry);
    return () => window.removeEventListener('online', retry);
  });

  return (
    <div className="title-field">
      <label htmlFor="doc-title" className="visually-hidden">
        Document title
      </label>
      <input
        id="doc-title"
        ref={inputRef}
        className="title-input"
        value={title}
        placeholder={UNTITLED}
        maxLength={200}
        readOnly={readOnly}
        autoComplete="off"
        spellCheck
        data-testid="doc-title"
        aria-describedby={error ? 'title-error' : undefined}
        onFocus={() => (editing.current = true)}
        onChange={(e) => {
          setTitle(e.target.value);
          if (timer.current) clearTimeout(timer.current);
          const value = e.target.value;
          timer.current = setTimeout(() => void save(value), 700);
        }}
        onBlur={() => {
          editing.current = false;
          void save(title);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter') {
            e.preventDefault();
            void save(title);
            (document.querySelector('#editor-content') as HTMLElement | null)?.focus();
          } else if (e.key === 'Escape') {
            setTitle(saved.current);
            (e.target as HTMLInputElement).blur();
          }
        }}
      />
      {error && (
        <span id="title-error" className="title-error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

function MissingDocument() {
  useDocumentTitle('Not found — Quire');
  return (
    <div className="page">
      <AppHeader />
      <main id="main" className="empty">
        <Icon name="doc" className="empty-icon" />
        <h1>This document does not exist</h1>
        <p>It may have been deleted, or the link is mistyped.</p>
        <Link href="/" className="button button-primary">
          Back to documents
        </Link>
      </main>
    </div>
  );
}
