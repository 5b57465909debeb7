//! What a WebSocket close code from the Quire server means for the client.
//!
//! One place maps codes to behaviour, mirroring the server's single mapping:
//! transient codes reconnect with backoff, refusals stop and tell the user.

export type SessionErrorCode =
  | 'permission-denied'
  | 'deleted'
  | 'too-large'
  | 'quota'
  | 'malformed'
  | 'refused';

export interface SessionError {
  code: SessionErrorCode;
  message: string;
  /** Whether retrying by hand can help (a deleted document cannot come back). */
  retryable: boolean;
}

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL = 1011;
export const CLOSE_MALFORMED = 4400;
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;
export const CLOSE_NOT_FOUND = 4404;
export const CLOSE_ACCESS_CHANGED = 4409;
export const CLOSE_DOC_TOO_LARGE = 4413;
export const CLOSE_TOO_SLOW = 4429;

/**
 * 4413 means "this change would make the document too large". The server
 * says why in the reason: its own size limit, or, starting with these words,
 * the storage quota of the document's owner (which deleting documents can
 * lift, so it deserves its own explanation).
 */
export const QUOTA_REASON_PREFIX = 'storage quota';

export type CloseVerdict = { kind: 'reconnect' } | { kind: 'stop'; error: SessionError };

/**
 * Decide what to do after the socket closed. `code` is null when the client
 * closed it itself (watchdog, going offline): always transient.
 */
export function classifyClose(code: number | null, reason = ''): CloseVerdict {
  if (code === null) return { kind: 'reconnect' };
  switch (code) {
    case CLOSE_NOT_FOUND:
      return stop('deleted', 'This document was deleted or does not exist.', false);
    case CLOSE_DOC_TOO_LARGE:
      if (reason.startsWith(QUOTA_REASON_PREFIX)) {
        return stop('quota', "This document can't grow: its owner's storage is full. Your last edits are kept on this device.", true);
      }
      return tooLarge();
    case CLOSE_TOO_BIG:
      return tooLarge();
    case CLOSE_MALFORMED:
      return stop('malformed', 'The server could not read a message from this page. Reload to try again.', true);
    case CLOSE_UNAUTHORIZED:
      return stop('permission-denied', 'You were signed out. Sign in again to keep editing; your edits are kept on this device.', true);
    case CLOSE_FORBIDDEN:
      return stop('permission-denied', 'You no longer have access to this document.', true);
    case CLOSE_ACCESS_CHANGED:
      // Rights were raised: a fresh socket joins with them.
      return { kind: 'reconnect' };
    case CLOSE_TOO_SLOW:
      // The server dropped us for falling behind; a fresh socket resyncs.
      return { kind: 'reconnect' };
    default:
      if (code >= 4400 && code < 4500) {
        return stop('refused', `The server refused the connection${reason ? `: ${reason}` : '.'}`, true);
      }
      // 1001 shutdown, 1006 network drop, 1011 internal error, 4500+ "try later".
      return { kind: 'reconnect' };
  }
}

function tooLarge(): CloseVerdict {
  return stop(
    'too-large',
    'The server refused this change because the document is too large. Your latest edits are kept on this device.',
    true,
  );
}

function stop(code: SessionErrorCode, message: string, retryable: boolean): CloseVerdict {
  return { kind: 'stop', error: { code, message, retryable } };
}
