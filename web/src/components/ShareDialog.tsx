//! Share a document: people by email with a role, and a link anyone signed in
//! can open. Only owners change anything; the server enforces it too, and
//! takes the change to the affected people's open editors at once.

import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';

import { ApiError, createLink, deleteLink, getLink, listShares, shareDocument, unshareDocument, type LinkState, type Role, type SharesView } from '../api';

const ROLES: { value: Role; label: string }[] = [
  { value: 'editor', label: 'Editor' },
  { value: 'commenter', label: 'Commenter' },
  { value: 'viewer', label: 'Viewer' },
  { value: 'owner', label: 'Owner' },
];
const LINK_ROLES = ROLES.filter((r) => r.value !== 'owner');

const message = (e: unknown) => (e instanceof ApiError ? e.message : 'Something went wrong. Try again.');

export function ShareDialog({ docId, open, onClose }: { docId: string; open: boolean; onClose(): void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [view, setView] = useState<SharesView | null>(null);
  const [link, setLink] = useState<LinkState | null>(null);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [linkRole, setLinkRole] = useState<Role>('viewer');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      setView(await listShares(docId));
      const l = await getLink(docId);
      setLink((prev) => (prev?.path && l.enabled ? { ...l, path: prev.path } : l));
    } catch (e) {
      setError(message(e));
    }
  }, [docId]);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      dialog.showModal();
      setError(null);
      void load();
    } else if (!open && dialog.open) {
      dialog.close();
    }
  }, [open, load]);

  const run = async (action: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
      await load();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };

  const onInvite = (event: FormEvent) => {
    event.preventDefault();
    void run(async () => {
      await shareDocument(docId, email, role);
      setEmail('');
    });
  };

  const linkUrl = link?.path ? `${location.origin}${link.path}` : null;
  return (
    <dialog
      ref={ref}
      className="dialog share-dialog"
      aria-labelledby="share-title"
      data-testid="share-dialog"
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
    >
      <h2 id="share-title">Share</h2>
      <form className="share-invite" onSubmit={onInvite}>
        <label className="field share-email">
          <span className="field-label">Add people by email</span>
          <input className="input" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} data-testid="share-email" />
        </label>
        <label className="field">
          <span className="field-label">Role</span>
          <select className="input" value={role} onChange={(e) => setRole(e.target.value as Role)} data-testid="share-role">
            {ROLES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="button button-primary" disabled={busy} data-testid="share-submit">
          Share
        </button>
      </form>

      <h3 className="share-subtitle">People with access</h3>
      <ul className="share-list" data-testid="share-list">
        {view?.owner && (
          <li>
            <span className="share-person">
              {view.owner.name} <span className="share-email-text">{view.owner.email}</span>
            </span>
            <span className="share-role">Owner</span>
          </li>
        )}
        {view?.shares.map((s) => (
          <li key={s.user.id} data-testid="share-row">
            <span className="share-person">
              {s.user.name} <span className="share-email-text">{s.user.email}</span>
              {s.viaLink && <span className="share-tag"> via link</span>}
            </span>
            <select
              className="input share-role"
              aria-label={`Role of ${s.user.name}`}
              value={s.role}
              disabled={busy}
              onChange={(e) => void run(() => shareDocument(docId, s.user.email, e.target.value as Role))}
            >
              {ROLES.map((r) => (
                <option key={r.value} value={r.value}>
                  {r.label}
                </option>
              ))}
            </select>
            <button
              type="button"
              className="button"
              disabled={busy}
              aria-label={`Remove ${s.user.name}`}
              onClick={() => void run(() => unshareDocument(docId, s.user.id))}
            >
              Remove
            </button>
          </li>
        ))}
      </ul>

      <h3 className="share-subtitle">Link sharing</h3>
      {link?.enabled ? (
        <div className="share-link" data-testid="share-link">
          <p>
            Anyone signed in with the link can open this document as <strong>{link.role}</strong>.
          </p>
          {linkUrl ? (
            <input className="input" readOnly value={linkUrl} aria-label="Share link" onFocus={(e) => e.target.select()} data-testid="share-link-url" />
          ) : (
            <p className="hint-text">The link was shown when it was created. Create a new one to copy it again (the old one stops working).</p>
          )}
          <div className="dialog-actions">
            <button type="button" className="button" disabled={busy} onClick={() => void run(async () => setLink(await createLink(docId, link.role ?? 'viewer')))}>
              New link
            </button>
            <button type="button" className="button button-danger" disabled={busy} onClick={() => void run(() => deleteLink(docId))} data-testid="share-link-off">
              Turn off link
            </button>
          </div>
        </div>
      ) : (
        <div className="share-link">
          <label className="field">
            <span className="field-label">Anyone with the link can</span>
            <select className="input" value={linkRole} onChange={(e) => setLinkRole(e.target.value as Role)} data-testid="share-link-role">
              {LINK_ROLES.map((r) => (
                <option key={r.value} value={r.value}>
                  {r.value === 'editor' ? 'Edit' : r.value === 'commenter' ? 'Comment' : 'View'}
                </option>
              ))}
            </select>
          </label>
          <button type="button" className="button" disabled={busy} onClick={() => void run(async () => setLink(await createLink(docId, linkRole)))} data-testid="share-link-on">
            Create link
          </button>
        </div>
      )}

      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      <div className="dialog-actions">
        <button type="button" className="button button-primary" onClick={onClose}>
          Done
        </button>
      </div>
    </dialog>
  );
}
