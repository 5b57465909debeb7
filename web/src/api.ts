//! The REST API, typed. Errors come back as `{"error":{"code","message"}}`.

/** An account in a document now, as the server bound it to its socket. */
export interface Presence {
  id: string;
  name: string;
  color: string;
}

export type Role = 'owner' | 'editor' | 'commenter' | 'viewer';

export interface DocumentMeta {
  id: string;
  title: string;
  /** Unix ms. */
  createdAt: number;
  /** Unix ms. */
  updatedAt: number;
  present: Presence[];
  /** What the signed-in user may do with it. */
  role?: Role;
  owner?: string | null;
}

/** Whether a role may change the text (commenters may not, yet). */
export function canEdit(role: Role | undefined): boolean {
  return role === undefined || role === 'owner' || role === 'editor';
}

export interface Account {
  id: string;
  email: string;
  name: string;
  color: string;
}

/** Which quota a `quota_exceeded` refusal is about, and its numbers. */
export interface QuotaRefusal {
  name: 'documents' | 'bytes';
  used: number;
  limit: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Set on `quota_exceeded` refusals. */
    readonly quota?: QuotaRefusal,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The request never reached the server (offline, server down). */
  get isNetwork(): boolean {
    return this.status === 0;
  }
}

/**
 * Called when the server says the session is over and a refresh could not
 * renew it; the auth layer shows the sign-in page.
 */
let onSignedOut: () => void = () => {};
export function setSignedOutHandler(handler: () => void): void {
  onSignedOut = handler;
}

/**
 * Renews the access cookie with the refresh cookie. Concurrent callers in
 * this tab share one request (other tabs are covered by the server's grace
 * window). Resolves to the account, or null when signed out; rejects with a
 * network ApiError when the server cannot be reached.
 */
let refreshing: Promise<Account | null> | null = null;
export function refreshSession(): Promise<Account | null> {
  refreshing ??= (async () => {
    try {
      const { user } = await send<{ user: Account }>('POST', '/api/auth/refresh');
      return user;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return null;
      throw error;
    }
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  try {
    return await send<T>(method, path, body);
  } catch (error) {
    // An expired access cookie: renew it once and try again.
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    const account = await refreshSession().catch(() => null);
    if (!account) {
      onSignedOut();
      throw error;
    }
    return send<T>(method, path, body);
  }
}

async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the Quire server. Check your connection.');
  }
  if (response.status === 204) return undefined as T;
  let payload: unknown = null;
  try {
    payload = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): fall through with what we know.
  }
  if (!response.ok) {
    const error = (payload as { error?: { code?: string; message?: string; quota?: QuotaRefusal } } | null)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? 'http_' + response.status,
      error?.message ?? `The server answered ${response.status}.`,
      error?.quota,
    );
  }
  return payload as T;
}

export async function listDocuments(query = '', scope: 'mine' | 'shared' = 'mine'): Promise<DocumentMeta[]> {
  const params = new URLSearchParams();
  if (query.trim()) params.set('q', query.trim());
  if (scope === 'shared') params.set('scope', 'shared');
  const qs = params.toString() ? `?${params.toString()}` : '';
  const { documents } = await request<{ documents: DocumentMeta[] }>('GET', `/api/documents${qs}`);
  return documents;
}

export async function createDocument(title?: string): Promise<DocumentMeta> {
  const { document } = await request<{ document: DocumentMeta }>('POST', '/api/documents', title === undefined ? {} : { title });
  return document;
}

export async function getDocument(id: string): Promise<DocumentMeta> {
  const { document } = await request<{ document: DocumentMeta }>('GET', `/api/documents/${encodeURIComponent(id)}`);
  return document;
}

export async function renameDocument(id: string, title: string): Promise<DocumentMeta> {
  const { document } = await request<{ document: DocumentMeta }>('PATCH', `/api/documents/${encodeURIComponent(id)}`, { title });
  return document;
}

export async function deleteDocument(id: string): Promise<void> {
  await request<void>('DELETE', `/api/documents/${encodeURIComponent(id)}`);
}

export const UNTITLED = 'Untitled document';

export function displayTitle(title: string | undefined | null): string {
  return title && title.trim() ? title : UNTITLED;
}

/** Last-known metadata, so a document page opened offline still has its title. */
export function rememberDocument(doc: Pick<DocumentMeta, 'id' | 'title'>): void {
  try {
    localStorage.setItem(`quire:meta:${doc.id}`, JSON.stringify({ title: doc.title }));
  } catch {
    // Best effort.
  }
}

export function recalledTitle(id: string): string | null {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(`quire:meta:${id}`) ?? 'null');
    return value && typeof (value as { title?: unknown }).title === 'string' ? (value as { title: string }).title : null;
  } catch {
    return null;
  }
}

export function forgetDocument(id: string): void {
  try {
    localStorage.removeItem(`quire:meta:${id}`);
  } catch {
    // Best effort.
  }
}

// ---------------------------------------------------------------- accounts

export async function signIn(email: string, password: string): Promise<Account> {
  const { user } = await send<{ user: Account }>('POST', '/api/auth/login', { email, password });
  return user;
}

export async function signUp(name: string, email: string, password: string): Promise<Account> {
  const { user } = await send<{ user: Account }>('POST', '/api/auth/signup', { name, email, password });
  return user;
}

export async function signOut(everywhere = false): Promise<void> {
  await send<void>('POST', everywhere ? '/api/auth/logout-all' : '/api/auth/logout');
}

export async function updateProfile(profile: { name?: string; color?: string }): Promise<Account> {
  const { user } = await request<{ user: Account }>('PATCH', '/api/me', profile);
  return user;
}

export async function me(): Promise<Account> {
  const { user } = await request<{ user: Account }>('GET', '/api/me');
  return user;
}

/** What the account's own documents take, counted by the server. */
export interface AccountUsage {
  documents: number;
  /** Stored bytes of all of them, whoever wrote them. */
  bytes: number;
}

/** The most the server allows each account; null where it sets no limit. */
export interface AccountQuotas {
  documents: number | null;
  bytes: number | null;
}

export async function accountUsage(): Promise<{ usage: AccountUsage; quotas: AccountQuotas }> {
  const { usage, quotas } = await request<{ usage: AccountUsage; quotas: AccountQuotas }>('GET', '/api/me');
  return { usage, quotas };
}

// ---------------------------------------------------------------- sharing

export interface Share {
  user: Account;
  role: Role;
  viaLink: boolean;
}

export interface SharesView {
  owner: Account | null;
  shares: Share[];
  yourRole: Role;
}

const docPath = (id: string) => `/api/documents/${encodeURIComponent(id)}`;

export function listShares(id: string): Promise<SharesView> {
  return request<SharesView>('GET', `${docPath(id)}/shares`);
}

export async function shareDocument(id: string, email: string, role: Role): Promise<Share> {
  const { share } = await request<{ share: Share }>('POST', `${docPath(id)}/shares`, { email, role });
  return share;
}

export async function unshareDocument(id: string, userId: string): Promise<void> {
  await request<void>('DELETE', `${docPath(id)}/shares/${encodeURIComponent(userId)}`);
}

export interface LinkState {
  enabled: boolean;
  role: Role | null;
  /** Only right after creation: the token is stored hashed and shown once. */
  path?: string;
}

export function getLink(id: string): Promise<LinkState> {
  return request<LinkState>('GET', `${docPath(id)}/link`);
}

export function createLink(id: string, role: Role): Promise<LinkState> {
  return request<LinkState>('POST', `${docPath(id)}/link`, { role });
}

export async function deleteLink(id: string): Promise<void> {
  await request<void>('DELETE', `${docPath(id)}/link`);
}

export async function redeemLink(id: string, token: string): Promise<DocumentMeta> {
  const { document } = await request<{ document: DocumentMeta }>('POST', `${docPath(id)}/link/redeem`, { token });
  return document;
}
