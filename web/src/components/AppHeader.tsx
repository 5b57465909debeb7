import type { ReactNode } from 'react';

import { Link } from '../router';
import { UserChip } from './UserChip';

export function Logo() {
  return (
    <svg className="logo-mark" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false">
      <rect x="2" y="2" width="20" height="20" rx="5" fill="currentColor" />
      <circle cx="11" cy="11" r="4.6" fill="none" stroke="#fff" strokeWidth="2.2" />
      <path d="M13.8 13.8l3.6 3.6" stroke="#fff" strokeWidth="2.4" strokeLinecap="round" />
    </svg>
  );
}

export function AppHeader({ children }: { children?: ReactNode }) {
  return (
    <header className="app-header">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Link href="/" className="brand" aria-label="Quire — all documents">
        <Logo />
        <span className="brand-name">Quire</span>
      </Link>
      <div className="app-header-middle">{children}</div>
      <UserChip />
    </header>
  );
}
