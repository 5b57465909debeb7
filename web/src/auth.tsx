//! Who is signed in. The session lives in HttpOnly cookies that page script
//! never sees; this layer only knows the account (name, colour, email) and
//! keeps the cookies fresh:
//! - on load it exchanges the refresh cookie for new cookies (which also
//!   tells whether anyone is signed in);
//! - while a page is open it renews them well before the 15-minute access
//!   cookie expires, so sockets can always reconnect;
//! - when the server says the session is over (a 401 that a refresh cannot
//!   cure, e.g. after "sign out everywhere"), it shows the sign-in page.
//!
//! The account (never a token) is cached in localStorage so that the offline
//! shell can still open documents kept on this device.

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';

import {
  ApiError,
  refreshSession,
  setSignedOutHandler,
  signIn as apiSignIn,
  signOut as apiSignOut,
  signUp as apiSignUp,
  updateProfile as apiUpdateProfile,
  type Account,
} from './api';

/** Renew the cookies this often (the access cookie lives 15 minutes). */
const RENEW_MS = 10 * 60 * 1000;
const ACCOUNT_KEY = 'quire:account';

export type AuthState = { kind: 'loading' } | { kind: 'signed-out'; reason?: string } | { kind: 'signed-in'; account: Account };

interface AuthValue {
  state: AuthState;
  signIn(email: string, password: string): Promise<void>;
  signUp(name: string, email: string, password: string): Promise<void>;
  signOut(everywhere?: boolean): Promise<void>;
  /** Changes the display name and presence colour. */
  updateProfile(profile: { name?: string; color?: string }): Promise<void>;
}

const AuthContext = createContext<AuthValue | null>(null);

function cachedAccount(): Account | null {
  try {
    const value = JSON.parse(localStorage.getItem(ACCOUNT_KEY) ?? 'null') as Account | null;
    return value && typeof value.name === 'string' && typeof value.color === 'string' ? value : null;
  } catch {
    return null;
  }
}

function cacheAccount(account: Account | null): void {
  try {
    if (account) localStorage.setItem(ACCOUNT_KEY, JSON.stringify(account));
    else localStorage.removeItem(ACCOUNT_KEY);
  } catch {
    // Best effort.
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<AuthState>({ kind: 'loading' });

  const signedIn = useCallback((account: Account) => {
    cacheAccount(account);
    setState({ kind: 'signed-in', account });
  }, []);
  const signedOut = useCallback((reason?: string) => {
    cacheAccount(null);
    setState({ kind: 'signed-out', reason });
  }, []);

  const renew = useCallback(async () => {
    try {
      const account = await refreshSession();
      if (account) signedIn(account);
      else signedOut();
    } catch {
      // Offline or server down: keep what we know; documents open from the
      // local copy and sockets retry.
      const cached = cachedAccount();
      setState((s) => (s.kind === 'loading' ? (cached ? { kind: 'signed-in', account: cached } : { kind: 'signed-out' }) : s));
    }
  }, [signedIn, signedOut]);

  useEffect(() => {
    setSignedOutHandler(() => signedOut('Your session ended. Sign in again.'));
    void renew();
    const timer = setInterval(() => void renew(), RENEW_MS);
    return () => clearInterval(timer);
  }, [renew, signedOut]);

  const value = useMemo<AuthValue>(
    () => ({
      state,
      signIn: async (email, password) => signedIn(await apiSignIn(email, password)),
      signUp: async (name, email, password) => signedIn(await apiSignUp(name, email, password)),
      signOut: async (everywhere = false) => {
        try {
          await apiSignOut(everywhere);
        } catch (error) {
          if (!(error instanceof ApiError) || error.isNetwork) throw error;
        }
        signedOut();
      },
      updateProfile: async (profile) => signedIn(await apiUpdateProfile(profile)),
    }),
    [state, signedIn, signedOut],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}

/** The signed-in account (only inside the signed-in part of the app). */
export function useAccount(): Account {
  const { state } = useAuth();
  if (state.kind !== 'signed-in') throw new Error('useAccount while not signed in');
  return state.account;
}
