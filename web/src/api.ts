//! The REST API, typed. Errors come back as `{"error":{"code","message"}}`.

export interface Presence {
  name: string;
  color: string;
}

export interface DocumentMeta {
  id: string;
  title: string;
  /** Unix ms. */
  createdAt: number;
  /** Unix ms. */
  updatedAt: number;
  present: Presence[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The request never reached the server (offline, server down). */
  get isNetwork(): boolean {
    return this.status === 0;
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
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
    const error = (payload as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(response.status, error?.code ?? 'http_' + response.status, error?.message ?? `The server answered ${response.status}.`);
  }
  return payload as T;
}

export async function listDocuments(query = ''): Promise<DocumentMeta[]> {
  const qs = query.trim() ? `?q=${encodeURIComponent(query.trim())}` : '';
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
