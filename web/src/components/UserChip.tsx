//! "You": your avatar and name; opens a menu to change the name and colour
//! others see, and to sign out.

import { useEffect, useId, useRef, useState, type FormEvent } from 'react';

import { ApiError } from '../api';
import { useAccount, useAuth } from '../auth';
import { PALETTE } from '../collab/awareness';
import { Avatar } from './Avatars';

export function UserChip() {
  const account = useAccount();
  const { signOut, updateProfile } = useAuth();
  const [open, setOpen] = useState(false);
  const [name, setName] = useState(account.name);
  const [color, setColor] = useState(account.color);
  const [error, setError] = useState<string | null>(null);
  const rootRef = useRef<HTMLDivElement>(null);
  const menuId = useId();

  useEffect(() => {
    if (!open) return;
    setName(account.name);
    setColor(account.color);
    setError(null);
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
  }, [open, account.name, account.color]);

  const onSave = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      await updateProfile({ name, color });
      setOpen(false);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Could not save. Try again.');
    }
  };

  const leave = async (everywhere: boolean) => {
    setError(null);
    try {
      await signOut(everywhere);
    } catch {
      setError('Cannot reach the server to sign out. Try again when online.');
    }
  };

  const person = { id: account.id, name: account.name, color: account.color, isSelf: true };
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
        <form id={menuId} className="popover user-form" aria-label="Your account" onSubmit={(e) => void onSave(e)}>
          <p className="account-email">
            Signed in as <strong>{account.email}</strong>
          </p>
          <label className="field">
            <span className="field-label">Your name, as collaborators see it</span>
            <input className="input" value={name} maxLength={100} required onChange={(e) => setName(e.target.value)} data-testid="user-name-input" />
          </label>
          <fieldset className="swatches">
            <legend className="field-label">Colour</legend>
            {PALETTE.map((c) => (
              <label key={c} className="swatch" style={{ backgroundColor: c }}>
                <input type="radio" name="color" value={c} checked={color === c} onChange={() => setColor(c)} aria-label={c} />
              </label>
            ))}
          </fieldset>
          <div className="dialog-actions">
            <button type="submit" className="button button-primary" data-testid="save-profile">
              Save
            </button>
          </div>
          {error && (
            <p className="form-error" role="alert">
              {error}
            </p>
          )}
          <div className="dialog-actions">
            <button type="button" className="button" onClick={() => void leave(true)} data-testid="sign-out-everywhere">
              Sign out everywhere
            </button>
            <button type="button" className="button" onClick={() => void leave(false)} data-testid="sign-out">
              Sign out
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
