//! Who is here: the local user's identity and the presence list.
//!
//! Until accounts exist, a person picks a name once; it is kept in
//! localStorage and published as the awareness `user` field, which Tiptap's
//! caret extension and the server's document list both read.

import type { Awareness } from 'y-protocols/awareness';

export interface UserIdentity {
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

const ANIMALS = ['Otter', 'Heron', 'Lynx', 'Badger', 'Falcon', 'Marten', 'Ibex', 'Puffin', 'Wren', 'Fox', 'Hare', 'Orca'];
const ADJECTIVES = ['Curious', 'Quiet', 'Bright', 'Nimble', 'Brave', 'Calm', 'Keen', 'Merry', 'Swift', 'Witty'];

const STORAGE_KEY = 'quire:user';

function pick<T>(items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length) % items.length]!;
}

export function randomIdentity(random: () => number = Math.random): UserIdentity {
  return { name: `${pick(ADJECTIVES, random)} ${pick(ANIMALS, random)}`, color: pick(PALETTE, random) };
}

export function isValidIdentity(value: unknown): value is UserIdentity {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.name === 'string' &&
    v.name.trim().length > 0 &&
    typeof v.color === 'string' &&
    /^#[0-9a-fA-F]{6}$/.test(v.color)
  );
}

export function normalizeName(name: string): string {
  return name.replace(/\s+/g, ' ').trim().slice(0, 40);
}

/** The stored identity, or a fresh random one (stored) and `isNew: true`. */
export function loadIdentity(storage: Storage = localStorage): { identity: UserIdentity; isNew: boolean } {
  try {
    const parsed: unknown = JSON.parse(storage.getItem(STORAGE_KEY) ?? 'null');
    if (isValidIdentity(parsed)) return { identity: { name: normalizeName(parsed.name), color: parsed.color }, isNew: false };
  } catch {
    // Corrupt entry: fall through and replace it.
  }
  const identity = randomIdentity();
  saveIdentity(identity, storage);
  return { identity, isNew: true };
}

export function saveIdentity(identity: UserIdentity, storage: Storage = localStorage): void {
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(identity));
  } catch {
    // Storage full or disabled: the name simply won't persist.
  }
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0]![0]! + parts[parts.length - 1]![0]! : (parts[0] ?? '?').slice(0, 2);
  return letters.toUpperCase();
}

/**
 * Everyone in the document, self first, one entry per person: two tabs of the
 * same person (same name and colour) show as one avatar.
 */
export function peersFromAwareness(awareness: Awareness): Peer[] {
  const self = awareness.clientID;
  const seen = new Set<string>();
  const peers: Peer[] = [];
  const entries = [...awareness.getStates().entries()].sort(([a], [b]) => (a === self ? -1 : b === self ? 1 : a - b));
  for (const [clientId, state] of entries) {
    const user: unknown = state?.user;
    if (!isValidIdentity(user)) continue;
    const key = `${user.name}\u0000${user.color}`;
    if (seen.has(key)) continue;
    seen.add(key);
    peers.push({ clientId, name: user.name, color: user.color, isSelf: clientId === self });
  }
  return peers;
}
