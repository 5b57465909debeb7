//! "You": your avatar and name; opens a small form to change them.

import { useEffect, useId, useRef, useState } from 'react';

import { PALETTE } from '../collab/awareness';
import { useIdentity } from '../identity';
import { Avatar } from './Avatars';

export function UserChip() {
  const { identity, isNew, setIdentity, acknowledge } = useIdentity();
  const [open, setOpen] = useState(false);
  const [name, setName] = useState(identity.name);
  const [color, setColor] = useState(identity.color);
  const rootRef = useRef<HTMLDivElement>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const formId = useId();

  useEffect(() => {
    if (!open) return;
    setName(identity.name);
    setColor(identity.color);
    queueMicrotask(() => inputRef.current?.select());
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
  }, [open, identity]);

  return (
    <div className="user-chip" ref={rootRef}>
      <button
        type="button"
        className="user-chip-button"
        aria-expanded={open}
        aria-controls={formId}
        aria-label={`You are ${identity.name}. Change your name or colour`}
        data-testid="user-chip"
        onClick={() => setOpen((o) => !o)}
      >
        <Avatar person={{ ...identity, isSelf: true }} size="sm" />
        <span className="user-chip-name">{identity.name}</span>
      </button>
      {isNew && !open && (
        <div className="hint" role="note">
          Others see you as <strong>{identity.name}</strong>.{' '}
          <button type="button" className="link-button" onClick={() => setOpen(true)}>
            Change
          </button>
          <button type="button" className="icon-button hint-close" aria-label="Dismiss" onClick={acknowledge}>
            ×
          </button>
        </div>
      )}
      {open && (
        <form
          id={formId}
          className="popover user-form"
          aria-label="Your name and colour"
          onSubmit={(event) => {
            event.preventDefault();
            setIdentity({ name, color });
            setOpen(false);
          }}
        >
          <label className="field">
            <span className="field-label">Your name, as collaborators see it</span>
            <input ref={inputRef} className="input" value={name} maxLength={40} required onChange={(e) => setName(e.target.value)} data-testid="user-name-input" />
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
            <button type="button" className="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
            <button type="submit" className="button button-primary">
              Save
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
