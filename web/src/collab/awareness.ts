//! Who is here: the people whose presence the server vouches for.
//!
//! The server replaces the awareness `user` field of every state with the
//! `{ id, name, color }` of the account whose socket sent it
//! (docs/protocol.md), so a state is shown as a person only when its `user`
//! has that shape: a state without a server-bound id (an older server, some
//! other client) is nobody's avatar or caret. The local user's own state is
//! built from the account (identity.tsx), in the key order the server
//! writes, so that the server relays it as sent.

import type { Awareness } from 'y-protocols/awareness';

/** A signed-in account as presence shows it. */
export interface UserIdentity {
  id: string;
  name: string;
  /** #rrggbb: Tiptap's caret extension only accepts this form. */
  color: string;
}

export interface Peer extends UserIdentity {
  clientId: number;
  isSelf: boolean;
}

/** Saturated colours that keep white label text readable (WCAG AA for bold text). */
export const PALETTE = [
  '#d93f0b', '#b60205', '#c2185b', '#8e24aa', '#5e35b1', '#3949ab',
  '#1e6fd9', '#00838f', '#00796b', '#2e7d32', '#6b8e23', '#a0522d',
];

/** The account a presence entry (an awareness `user` field, or the API's `present`) names, if it names one. */
export function verifiedUser(user: unknown): UserIdentity | null {
  if (typeof user !== 'object' || user === null) return null;
  const u = user as Record<string, unknown>;
  if (typeof u.id !== 'string' || u.id.length === 0) return null;
  if (typeof u.name !== 'string' || u.name.trim().length === 0) return null;
  if (typeof u.color !== 'string' || !/^#[0-9a-fA-F]{6}$/.test(u.color)) return null;
  return { id: u.id, name: u.name, color: u.color };
}

/** Whether an awareness state belongs to a verified account. */
export function isVerifiedState(state: unknown): boolean {
  return typeof state === 'object' && state !== null && verifiedUser((state as { user?: unknown }).user) !== null;
}

/** Verified entries only, one per account, in the given order. */
export function verifiedPeople<T>(people: readonly T[]): (T & UserIdentity)[] {
  const seen = new Set<string>();
  const out: (T & UserIdentity)[] = [];
  for (const person of people) {
    const user = verifiedUser(person);
    if (!user || seen.has(user.id)) continue;
    seen.add(user.id);
    out.push(person as T & UserIdentity);
  }
  return out;
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0]![0]! + parts[parts.length - 1]![0]! : (parts[0] ?? '?').slice(0, 2);
  return letters.toUpperCase();
}

/**
 * Everyone in the document, self first, one entry per account: two tabs of
 * the same person show as one avatar (and one of your own other tabs is you).
 */
export function peersFromAwareness(awareness: Pick<Awareness, 'clientID' | 'getStates'>): Peer[] {
  const self = awareness.clientID;
  const entries = [...awareness.getStates().entries()].sort(([a], [b]) => (a === self ? -1 : b === self ? 1 : a - b));
  const people = entries.flatMap(([clientId, state]) => {
    const user = verifiedUser(state?.user);
    return user ? [{ ...user, clientId, isSelf: clientId === self }] : [];
  });
  return verifiedPeople(people);
}
