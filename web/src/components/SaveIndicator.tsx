import type { SaveState } from '../collab/saveState';
import { saveStateLabel } from '../collab/saveState';
import { Icon, Spinner } from './Icon';

/** Always visible in the editor header; announced politely to screen readers. */
export function SaveIndicator({ state }: { state: SaveState }) {
  const label = state.kind === 'error' ? 'Changes not saved' : saveStateLabel(state);
  return (
    <div className={`save-state save-${state.kind}`} role="status" aria-live="polite" data-testid="save-state" data-state={state.kind}>
      {state.kind === 'saved' && <Icon name="check" />}
      {(state.kind === 'saving' || state.kind === 'connecting') && <Spinner />}
      {state.kind === 'offline' && <Icon name="cloudOff" />}
      {state.kind === 'error' && <Icon name="warning" />}
      <span className="save-label">{label}</span>
    </div>
  );
}
