//! `/signin` and `/signup`. Shown instead of any page while nobody is signed
//! in; after signing in, the page that was asked for opens.

import { useState, type FormEvent } from 'react';

import { ApiError } from '../api';
import { useAuth } from '../auth';
import { Logo } from '../components/AppHeader';
import { Link, navigate, useDocumentTitle } from '../router';

export function SignInPage({ mode, notice }: { mode: 'signin' | 'signup'; notice?: string }) {
  const signingUp = mode === 'signup';
  useDocumentTitle(`${signingUp ? 'Create an account' : 'Sign in'} — Quire`);
  const { signIn, signUp } = useAuth();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (signingUp) await signUp(name, email, password);
      else await signIn(email, password);
      // Back where the person was going (the sign-in page itself leads home).
      if (location.pathname === '/signin' || location.pathname === '/signup') navigate('/', { replace: true });
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Something went wrong. Try again.');
      setBusy(false);
    }
  };

  const other = signingUp ? '/signin' : '/signup';
  return (
    <div className="page auth-page">
      <main id="main" className="auth-main">
        <form className="auth-card" onSubmit={(e) => void onSubmit(e)} aria-labelledby="auth-heading">
          <div className="auth-brand">
            <Logo />
            <span className="brand-name">Quire</span>
          </div>
          <h1 id="auth-heading">{signingUp ? 'Create your account' : 'Sign in'}</h1>
          {notice && !error && (
            <p className="auth-notice" role="status">
              {notice}
            </p>
          )}
          {signingUp && (
            <label className="field">
              <span className="field-label">Name</span>
              <input className="input" name="name" autoComplete="name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
            </label>
          )}
          <label className="field">
            <span className="field-label">Email</span>
            <input className="input" name="email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </label>
          <label className="field">
            <span className="field-label">Password</span>
            <input
              className="input"
              name="password"
              type="password"
              autoComplete={signingUp ? 'new-password' : 'current-password'}
              required
              minLength={signingUp ? 8 : undefined}
              aria-describedby={signingUp ? 'password-hint' : undefined}
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </label>
          {signingUp && (
            // The server judges strength (and explains a refusal, shown below).
            <p className="field-hint" id="password-hint">
              At least 8 characters. A few uncommon words make a strong password; common and easily guessed ones are refused.
            </p>
          )}
          {error && (
            <p className="form-error" role="alert" data-testid="auth-error">
              {error}
            </p>
          )}
          <button type="submit" className="button button-primary auth-submit" disabled={busy}>
            {signingUp ? 'Create account' : 'Sign in'}
          </button>
          <p className="auth-switch">
            {signingUp ? 'Already have an account?' : 'New to Quire?'}{' '}
            <Link href={other}>{signingUp ? 'Sign in' : 'Create an account'}</Link>
          </p>
        </form>
      </main>
    </div>
  );
}
