//! "You": your avatar and name; opens a menu to sign out.

import { useEffect, useId, useRef, useState } from 'react';

import { useAccount, useAuth } from '../auth';
import { Avatar } from './Avatars';

export function UserChip() {
  const account = useAccount();
  const { signOut } = useAuth();
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const rootRef = useRef<HTMLDivElement>(null);
  const menuId = useId();

  useEffect(() => {
    if (!open) return;
    const onPointer = (event: PointerEvent) => {
      if (!rootRef.current?.contains(event.target as Node)) setOpen(false);
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') setOpen(false);
    };
    document.addEventListener('pointerdown', onPointer);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('pointerdown', onPointer);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);

  const leave = async (everywhere: boolean) => {
    setError(null);
    try {
      await signOut(everywhere);
    } catch {
      setError('Cannot reach the server to sign out. Try again when online.');
    }
  };

  const person = { name: account.name, color: account.color, isSelf: true };
  return (
    <div className="user-chip" ref={rootRef}>
      <button
        type="button"
        className="user-chip-button"
        aria-expanded={open}
        aria-controls={menuId}
        aria-label={`You are ${account.name}. Account menu`}
        data-testid="user-chip"
        onClick={() => setOpen((o) => !o)}
      >
        <Avatar person={person} size="sm" />
        <span className="user-chip-name">{account.name}</span>
      </button>
      {open && (
        <div id={menuId} className="popover user-form" role="group" aria-label="Your account">
          <p className="account-email">
            Signed in as <strong>{account.email}</strong>
          </p>
          {error && (
            <p className="form-error" role="alert">
              {error}
            </p>
          )}
          <div className="dialog-actions">
            <button type="button" className="button" onClick={() => void leave(true)} data-testid="sign-out-everywhere">
              Sign out everywhere
            </button>
            <button type="button" className="button button-primary" onClick={() => void leave(false)} data-testid="sign-out">
              Sign out
            </button>
          </div>
        </div>
      )}
    </div>
  );
}
