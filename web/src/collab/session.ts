//! One open document: the Yjs doc, its IndexedDB copy, and the socket to the
//! server, with our reconnect policy and the durable-ack save state.
//!
//! The stock `WebsocketProvider` does the protocol. We add three things around
//! it, without patching it:
//! - a counting WebSocket subclass and a handler for message type 100, so the
//!   save state is driven by the server's durable acknowledgements;
//! - our own reconnect scheduling (backoff with jitter), by clearing
//!   `provider.shouldConnect` when a socket drops so the stock retry timer
//!   does nothing, and calling `provider.connect()` ourselves;
//! - close-code and permission handling that stops and explains instead of
//!   retrying forever.
//! The editor binds to `doc` and `awareness`; React reads `getSnapshot()`.

import { IndexeddbPersistence } from 'y-indexeddb';
import * as authProtocol from 'y-protocols/auth';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';

import type { UserIdentity } from './awareness';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
import { classifyClose } from './closeCodes';
import { localStoreName } from './localCopy';
import { countingWebSocket, MESSAGE_DURABLE_ACK, MESSAGE_SYNC, readDurableAck } from './durableAck';
import { realClock, ReconnectScheduler, type Clock } from './reconnect';
import { initialSyncState, reduceSync, type SyncEvent, type SyncState } from './saveState';

/** Tiptap's Collaboration extension binds to this XmlFragment by default. */
export const EDITOR_FIELD = 'default';

const MESSAGE_AWARENESS = 1;
const MESSAGE_AUTH = 2;

export interface NetworkMonitor {
  isOnline(): boolean;
  subscribe(listener: (online: boolean) => void): () => void;
}

/** navigator.onLine === false means "certainly offline"; true only "maybe". */
export const browserNetwork: NetworkMonitor = {
  isOnline: () => typeof navigator === 'undefined' || navigator.onLine !== false,
  subscribe(listener) {
    const on = () => listener(true);
    const off = () => listener(false);
    window.addEventListener('online', on);
    window.addEventListener('offline', off);
    return () => {
      window.removeEventListener('online', on);
      window.removeEventListener('offline', off);
    };
  },
};

export interface LocalStore {
  whenSynced: Promise<unknown>;
  destroy(): unknown;
}

export interface SessionOptions {
  docId: string;
  /** Base of the sync endpoint, e.g. `ws://host/ws`; the doc id is appended. */
  wsBase: string;
  user: UserIdentity;
  WebSocketImpl?: typeof WebSocket;
  /** IndexedDB by default; tests may pass null or a fake. */
  localStore?: ((name: string, doc: Y.Doc) => LocalStore) | null;
  network?: NetworkMonitor;
  clock?: Clock;
  random?: () => number;
  backoff?: BackoffOptions;
  /** How long to wait for IndexedDB before connecting anyway. */
  localLoadTimeoutMs?: number;
  disableBroadcastChannel?: boolean;
  /**
   * Runs before each reconnect (not the first connect), e.g. to renew the
   * access cookie: a socket refused for an expired cookie only shows up as a
   * dropped connection.
   */
  beforeReconnect?: () => Promise<unknown>;
}

const indexedDbStore = (name: string, doc: Y.Doc): LocalStore => new IndexeddbPersistence(name, doc);

export class CollabSession {
  readonly doc: Y.Doc;
  readonly provider: WebsocketProvider;
  readonly docId: string;
  /** Resolves once the IndexedDB copy has been applied (or gave up). */
  readonly loaded: Promise<void>;

  private state: SyncState;
  private readonly listeners = new Set<() => void>();
  private readonly scheduler: ReconnectScheduler;
  private readonly network: NetworkMonitor;
  private readonly clock: Clock;
  private readonly localStore: LocalStore | null;
  private unsubscribeNetwork: (() => void) | null = null;
  private beforeRemoteChange: (() => void) | null = null;
  private started = false;
  private destroyed = false;
  /** The account presence shows, as last given (see setUser). */
  private user: UserIdentity;

  constructor(options: SessionOptions) {
    this.docId = options.docId;
    this.network = options.network ?? browserNetwork;
    this.clock = options.clock ?? realClock;
    this.state = { ...initialSyncState, networkOffline: !this.network.isOnline() };
    this.doc = new Y.Doc();

    const Base = options.WebSocketImpl ?? globalThis.WebSocket;
    this.provider = new WebsocketProvider(options.wsBase, options.docId, this.doc, {
      connect: false,
      params: { quire: '1' },
      WebSocketPolyfill: countingWebSocket(Base, (socket, subtype) => {
        if (socket === this.provider.ws) this.dispatch({ type: 'sent', subtype });
      }),
      // We classify close codes ourselves (see onConnectionClose).
      shouldReconnect: () => true,
      disableBc: options.disableBroadcastChannel ?? false,
    });
    const beforeReconnect = options.beforeReconnect;
    this.scheduler = new ReconnectScheduler(
      () => {
        if (!beforeReconnect) return this.connectNow();
        void beforeReconnect().then(
          () => this.connectNow(),
          () => this.connectNow(),
        );
      },
      this.clock,
      options.random ?? Math.random,
      options.backoff ?? DEFAULT_BACKOFF,
    );

    // Remote document changes and remote carets both re-render the editor;
    // give it a chance to catch up with the page's selection first.
    for (const type of [MESSAGE_SYNC, MESSAGE_AWARENESS]) {
      const handle = this.provider.messageHandlers[type]!;
      this.provider.messageHandlers[type] = (...args) => {
        this.beforeRemoteChange?.();
        handle(...args);
      };
    }
    this.provider.messageHandlers[MESSAGE_DURABLE_ACK] = (_encoder, decoder) => {
      // Nothing is written to the encoder, so nothing is sent back.
      this.dispatch({ type: 'ack', count: readDurableAck(decoder) });
    };
    this.provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder, provider) => {
      authProtocol.readAuthMessage(decoder, provider.doc, (_doc, reason) => this.onPermissionDenied(reason));
    };

    this.provider.on('status', ({ status }) => {
      if (status === 'connecting') this.dispatch({ type: 'connecting' });
      else if (status === 'connected') {
        this.forgetDepartedPeers();
        this.dispatch({ type: 'open' });
      }
    });
    this.provider.on('sync', (synced: boolean) => {
      if (!synced) return;
      this.scheduler.reset();
      this.dispatch({ type: 'synced' });
    });
    this.provider.on('connection-close', (event) => this.onConnectionClose(event));

    // Registered after the provider's own update handler, so when a socket is
    // open the frame has already been sent (and counted) by the time we look.
    this.doc.on('update', (_update: Uint8Array, origin: unknown) => {
      if (origin === this.provider) return; // came from the server
      this.dispatch({ type: 'local-change', socketCanCarry: this.socketOpen() });
    });

    this.user = options.user;
    this.provider.awareness.setLocalStateField('user', options.user);

    const makeStore = options.localStore === undefined ? indexedDbStore : options.localStore;
    this.localStore = makeStore ? makeStore(localStoreName(options.docId), this.doc) : null;
    const timeoutMs = options.localLoadTimeoutMs ?? 3000;
    this.loaded = this.localStore
      ? Promise.race([
          this.localStore.whenSynced.then(
            () => undefined,
            () => undefined,
          ),
          new Promise<void>((resolve) => this.clock.setTimeout(resolve, timeoutMs)),
        ])
      : Promise.resolve();
  }

  get awareness() {
    return this.provider.awareness;
  }

  /** The editor's shared type. */
  get fragment(): Y.XmlFragment {
    return this.doc.getXmlFragment(EDITOR_FIELD);
  }

  getSnapshot = (): SyncState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Connect once the local copy is loaded, so the first sync is a small diff. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.unsubscribeNetwork = this.network.subscribe((online) => this.onNetwork(online));
    await this.loaded;
    if (this.destroyed) return;
    if (this.network.isOnline()) this.connectNow();
  }

  /** After an error, or when the user asks: try again right away. */
  retry(): void {
    if (this.destroyed) return;
    this.dispatch({ type: 'clear-error' });
    this.scheduler.reset();
    this.scheduler.cancel();
    this.connectNow();
  }

  /**
   * Called right before a sync or awareness message from the server is
   * applied. The editor uses it to bring its selection up to date with the
   * page first.
   */
  setBeforeRemoteChange(hook: (() => void) | null): void {
    this.beforeRemoteChange = hook;
  }

  /**
   * Publishes a changed name or colour. The server binds presence to the
   * account as it was when the socket opened, so an open socket is replaced
   * by one opened now (one sync round trip; a rename is rare).
   */
  setUser(user: UserIdentity): void {
    // Compared with what this session was given, not with the awareness
    // state: the editor's caret extension may have published it already.
    const changed = !sameUser(this.user, user);
    this.user = user;
    this.provider.awareness.setLocalStateField('user', user);
    if (!changed || !this.provider.wsconnected || this.state.error) return;
    this.provider.disconnect();
    this.connectNow();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.scheduler.cancel();
    this.unsubscribeNetwork?.();
    this.provider.destroy();
    void this.localStore?.destroy();
    this.doc.destroy();
    this.listeners.clear();
  }

  /**
   * y-websocket drops the others' presence when its socket closes but keeps
   * their clocks, so the states the server hands the next socket (the same
   * clocks) would be ignored until each person renews theirs (15 s).
   * Forgetting the clocks of those no longer shown lets them appear at once.
   */
  private forgetDepartedPeers(): void {
    const { awareness } = this.provider;
    for (const id of [...awareness.meta.keys()]) {
      if (id !== awareness.clientID && !awareness.states.has(id)) awareness.meta.delete(id);
    }
  }

  private socketOpen(): boolean {
    const ws = this.provider.ws;
    return this.provider.wsconnected && ws !== null && ws.readyState === 1;
  }

  private connectNow(): void {
    if (this.destroyed || this.state.error || !this.network.isOnline()) return;
    this.provider.connect();
  }

  private onConnectionClose(event: CloseEvent | null): void {
    this.dispatch({ type: 'closed' });
    if (this.destroyed) return;
    // disconnect() clears shouldConnect before closing: a close we asked for.
    if (!this.provider.shouldConnect) return;
    // Silence the stock retry timer that y-websocket arms right after this event.
    this.provider.shouldConnect = false;
    const verdict = classifyClose(event ? event.code : null, event?.reason ?? '');
    if (verdict.kind === 'stop') {
      this.dispatch({ type: 'error', error: verdict.error });
      return;
    }
    if (!this.network.isOnline()) return; // the 'online' event reconnects
    this.dispatch({ type: 'retry-scheduled', at: this.scheduler.schedule() });
  }

  private onNetwork(online: boolean): void {
    if (this.destroyed) return;
    this.dispatch({ type: 'network', online });
    if (!online) {
      // A dead network can leave a socket looking open for a long time (until
      // y-websocket's 30 s watchdog). Drop it now so the UI tells the truth.
      this.scheduler.cancel();
      this.provider.disconnect();
      return;
    }
    if (this.state.error) return;
    // Everyone on this network comes back at once: start small, but jittered.
    this.scheduler.reset();
    this.dispatch({ type: 'retry-scheduled', at: this.scheduler.schedule() });
  }

  private onPermissionDenied(reason: string): void {
    this.dispatch({
      type: 'error',
      error: {
        code: 'permission-denied',
        message: `The server refused this change${reason ? ` (${reason})` : ''}. Your edits are kept on this device.`,
        retryable: true,
      },
    });
    // Close outside the message handler that is still running.
    queueMicrotask(() => this.provider.disconnect());
  }

  private dispatch(event: SyncEvent): void {
    const next = reduceSync(this.state, event);
    if (next === this.state) return;
    this.state = next;
    for (const listener of this.listeners) listener();
  }
}

function sameUser(a: UserIdentity, b: UserIdentity): boolean {
  return a.id === b.id && a.name === b.name && a.color === b.color;
}
