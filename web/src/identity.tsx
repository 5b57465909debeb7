//! The person using this browser, shared by every page: the signed-in
//! account's id, name and colour, which presence (carets, avatars) shows.
//! The keys are in the order the server writes them when it binds presence
//! to the account, so the server relays our state as sent.

import { createContext, useContext, useMemo, type ReactNode } from 'react';

import { useAccount } from './auth';
import type { UserIdentity } from './collab/awareness';

interface IdentityValue {
  identity: UserIdentity;
}

const IdentityContext = createContext<IdentityValue | null>(null);

export function IdentityProvider({ children }: { children: ReactNode }) {
  const account = useAccount();
  const value = useMemo(
    () => ({ identity: { id: account.id, name: account.name, color: account.color } }),
    [account.id, account.name, account.color],
  );
  return <IdentityContext.Provider value={value}>{children}</IdentityContext.Provider>;
}

export function useIdentity(): IdentityValue {
  const value = useContext(IdentityContext);
  if (!value) throw new Error('useIdentity outside IdentityProvider');
  return value;
}
