//! The on-device copy of a document (IndexedDB, via y-indexeddb). Kept free
//! of Yjs imports so the documents page can use it without loading the editor.

/** Name of a document's IndexedDB database. */
export const localStoreName = (docId: string) => `quire:doc:${docId}`;

/** Remove a document's local copy, e.g. after it was deleted on the server. */
export function clearLocalCopy(docId: string): Promise<void> {
  return new Promise((resolve) => {
    if (typeof indexedDB === 'undefined') return resolve();
    const request = indexedDB.deleteDatabase(localStoreName(docId));
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  });
}
