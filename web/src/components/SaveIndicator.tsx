import { useEffect, useRef, useState } from 'react';

import type { SaveState } from '../collab/saveState';
import { saveStateLabel } from '../collab/saveState';
import { Icon, Spinner } from './Icon';

/**
 * Always visible in the editor header. Screen readers are told only about
 * changes that matter (going offline, an error, being back and saved), not
 * about the Saving…/Saved flicker of every keystroke.
 */
export function SaveIndicator({ state }: { state: SaveState }) {
  const label = state.kind === 'error' ? 'Changes not saved' : saveStateLabel(state);
  const announcement = useAnnouncement(state);
  return (
    <>
      <div className={`save-state save-${state.kind}`} data-testid="save-state" data-state={state.kind} title={saveStateLabel(state)}>
        {state.kind === 'saved' && <Icon name="check" />}
        {(state.kind === 'saving' || state.kind === 'connecting') && <Spinner />}
        {state.kind === 'offline' && <Icon name="cloudOff" />}
        {state.kind === 'error' && <Icon name="warning" />}
        <span className="save-label">{label}</span>
      </div>
      <span className="visually-hidden" role="status" aria-live="polite">
        {announcement}
      </span>
    </>
  );
}

function useAnnouncement(state: SaveState): string {
  const [message, setMessage] = useState('');
  const troubled = useRef(false);
  useEffect(() => {
    if (state.kind === 'offline' || state.kind === 'error') {
      troubled.current = true;
      setMessage(saveStateLabel(state));
    } else if (state.kind === 'saved' && troubled.current) {
      troubled.current = false;
      setMessage('Back online. All changes saved.');
    }
  }, [state]);
  return message;
}
