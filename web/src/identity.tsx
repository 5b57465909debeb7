//! The person using this browser, shared by every page.

import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react';

import { loadIdentity, normalizeName, saveIdentity, type UserIdentity } from './collab/awareness';

interface IdentityValue {
  identity: UserIdentity;
  /** True on the first visit, until the person confirms or changes the name. */
  isNew: boolean;
  setIdentity(identity: UserIdentity): void;
  acknowledge(): void;
}

const IdentityContext = createContext<IdentityValue | null>(null);

export function IdentityProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState(() => loadIdentity());
  const setIdentity = useCallback((identity: UserIdentity) => {
    const next = { name: normalizeName(identity.name) || 'Anonymous', color: identity.color };
    saveIdentity(next);
    setState({ identity: next, isNew: false });
  }, []);
  const acknowledge = useCallback(() => setState((s) => ({ ...s, isNew: false })), []);
  const value = useMemo(
    () => ({ identity: state.identity, isNew: state.isNew, setIdentity, acknowledge }),
    [state, setIdentity, acknowledge],
  );
  return <IdentityContext.Provider value={value}>{children}</IdentityContext.Provider>;
}

export function useIdentity(): IdentityValue {
  const value = useContext(IdentityContext);
  if (!value) throw new Error('useIdentity outside IdentityProvider');
  return value;
}
