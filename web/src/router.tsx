//! A small router on the History API: `/`, `/d/{id}`, `/signin`, `/signup`.

import { useEffect, useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from 'react';

export type Route =
  | { name: 'documents' }
  | { name: 'editor'; id: string }
  | { name: 'signin' }
  | { name: 'signup' }
  | { name: 'not-found' };

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '') return { name: 'documents' };
  if (pathname === '/signin') return { name: 'signin' };
  if (pathname === '/signup') return { name: 'signup' };
  const match = /^\/d\/([^/]+)\/?$/.exec(pathname);
  if (match) return { name: 'editor', id: decodeURIComponent(match[1]!) };
  return { name: 'not-found' };
}

const listeners = new Set<() => void>();
function subscribe(listener: () => void) {
  listeners.add(listener);
  window.addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('popstate', listener);
  };
}

export function navigate(path: string, { replace = false, state = null as unknown } = {}): void {
  if (replace) history.replaceState(state, '', path);
  else history.pushState(state, '', path);
  for (const l of listeners) l();
  window.scrollTo(0, 0);
}

export function usePathname(): string {
  return useSyncExternalStore(subscribe, () => location.pathname);
}

export function documentPath(id: string): string {
  return `/d/${encodeURIComponent(id)}`;
}

export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const handle = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={handle} {...rest} />;
}

export function useDocumentTitle(title: string): void {
  useEffect(() => {
    document.title = title;
  }, [title]);
}
