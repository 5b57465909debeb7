// End-to-end harness: a real `quire serve` on a free port with a temporary
// data directory, Debian's Chromium driven by playwright-core, and helpers
// that wait on conditions (never on fixed sleeps).
//
// Accounts: every person signs up in the browser, through the sign-up page
// (`personContext`), so their session is the real HttpOnly cookie pair. The
// harness itself has a "host" account, signed up through the API, which owns
// the documents `createDocument` makes; each gets an editor share link, and
// `openDocument` opens it through that link, so everyone can open it as a
// collaborator would. `api()` calls are made as the host, or as a person.
//
// QUIRE_BIN selects the server binary (default ../target/debug/quire from
// web/). This harness never builds Rust; the test command does that first.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const webDir = resolve(here, '..');
export const resultsDir = join(webDir, 'test-results');
export const QUIRE_BIN = resolve(webDir, process.env.QUIRE_BIN ?? '../target/debug/quire');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** @returns {Promise<number>} a port the OS just handed out */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * A running `quire serve`. `kill()` sends SIGKILL (a crash); `start()` brings
 * it back on the same port and data directory.
 */
export class QuireServer {
  /** @param {{ port: number, dataDir: string, extraArgs?: string[] }} opts */
  constructor({ port, dataDir, extraArgs = [] }) {
    this.port = port;
    this.dataDir = dataDir;
    /** More `quire serve` flags, e.g. limits a test needs small. */
    this.extraArgs = extraArgs;
    this.url = `http://127.0.0.1:${port}`;
    /** Someone else's server (QUIRE_E2E_URL): never started or stopped here. */
    this.external = false;
    /** @type {import('node:child_process').ChildProcess | null} */
    this.proc = null;
    this.log = '';
    /** `Cookie` header of the harness's own account. */
    this.hostCookie = '';
    /** @type {Map<string, string>} share-link token of each document createDocument made */
    this.links = new Map();
    /** @type {Map<string, string>} email of each person who signed up, by name */
    this.accounts = new Map();
  }

  /**
   * Starts a fresh `quire serve`, or, when QUIRE_E2E_URL names one, uses the
   * Quire already running there (a cluster behind a proxy: `e2e/cluster.sh`).
   * @param {string[]} [extraArgs] more `quire serve` flags
   */
  static async launch(extraArgs = []) {
    const external = process.env.QUIRE_E2E_URL;
    let server;
    if (external) {
      server = new QuireServer({ port: Number(new URL(external).port), dataDir: '', extraArgs });
      server.url = external.replace(/\/$/, '');
      server.external = true;
    } else {
      if (!existsSync(QUIRE_BIN)) {
        throw new Error(`Server binary not found at ${QUIRE_BIN}. Build it first (cargo build -p quire-server) or set QUIRE_BIN.`);
      }
      const dataDir = mkdtempSync(join(tmpdir(), 'quire-e2e-'));
      server = new QuireServer({ port: await freePort(), dataDir, extraArgs });
      await server.start();
    }
    currentServer = server;
    // Fail fast, and say why, when the binary does not serve this web app.
    const shell = await (await fetch(server.url + '/')).text();
    if (!shell.includes('id="root"')) {
      await server.stop();
      throw new Error(
        `${QUIRE_BIN} does not serve the built web app (web/dist). Build the app (npm --prefix web run build), ` +
          'then rebuild the server from this checkout so it can find web/dist.',
      );
    }
    const host = await fetch(server.url + '/api/auth/signup', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: server.url },
      body: JSON.stringify({ email: 'host@e2e.test', password: PASSWORD, name: 'E2E host' }),
    });
    if (host.status !== 201) throw new Error(`host sign-up answered ${host.status}`);
    server.hostCookie = host.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .filter((c) => c.startsWith('quire_access='))
      .join('; ');
    return server;
  }

  /** Start the process and resolve once it prints its URL. */
  start(timeoutMs = 30_000) {
    return new Promise((resolveStart, reject) => {
      // Test-only cheap password hashing: every test signs people up. The
      // per-address sign-in limit is raised for the same reason (it is
      // tested in crates/server/tests/security.rs).
      const args = [
        'serve',
        '--insecure-fast-password-hashing',
        '--auth-burst',
        '1000',
        '--listen',
        `127.0.0.1:${this.port}`,
        '--data-dir',
        this.dataDir,
        ...this.extraArgs,
      ];
      const proc = spawn(QUIRE_BIN, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
      });
      this.proc = proc;
      let stdout = '';
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        proc.kill('SIGKILL');
        reject(new Error(`quire serve did not report readiness within ${timeoutMs} ms.\n${this.log}`));
      }, timeoutMs);
      proc.stdout?.on('data', (chunk) => {
        const text = chunk.toString();
        stdout += text;
        this.log += text;
        if (!settled && /Quire is running at http:\/\/\S+/.test(stdout)) {
          settled = true;
          clearTimeout(timer);
          resolveStart(undefined);
        }
      });
      proc.stderr?.on('data', (chunk) => {
        this.log += chunk.toString();
        if (this.log.length > 200_000) this.log = this.log.slice(-100_000);
      });
      proc.on('exit', (code, signal) => {
        if (this.proc === proc) this.proc = null;
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new Error(`quire serve exited early (code ${code}, signal ${signal}).\n${this.log}`));
        }
      });
    });
  }

  /** SIGKILL: no graceful shutdown, no flush. Resolves when the process is gone. */
  kill() {
    const proc = this.proc;
    if (!proc) return Promise.resolve();
    return new Promise((resolveKill) => {
      proc.once('exit', () => resolveKill(undefined));
      proc.kill('SIGKILL');
    });
  }

  async stop() {
    if (this.external) return;
    const proc = this.proc;
    if (proc) {
      await new Promise((resolveStop) => {
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolveStop(undefined);
        });
        proc.kill('SIGTERM');
      });
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * A request as the harness's host account, or as `person` (their browser's cookies).
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {{ context: import('playwright-core').BrowserContext }} [person]
   */
  async api(method, path, body, person) {
    const cookie = person ? (await person.context.cookies(this.url)).map((c) => `${c.name}=${c.value}`).join('; ') : this.hostCookie;
    /** @type {Record<string, string>} */
    const headers = { Cookie: cookie, Origin: this.url };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  /** @param {string} [title] @returns {Promise<string>} the new document's id */
  async createDocument(title) {
    const { status, body } = await this.api('POST', '/api/documents', title === undefined ? {} : { title });
    if (status !== 201) throw new Error(`POST /api/documents answered ${status}: ${JSON.stringify(body)}`);
    const id = body.document.id;
    const link = await this.api('POST', `/api/documents/${id}/link`, { role: 'editor' });
    if (link.status !== 201) throw new Error(`POST /api/documents/${id}/link answered ${link.status}`);
    this.links.set(id, link.body.token);
    return id;
  }
}

export const PASSWORD = 'e2e password 1';

/** The server `launch` started last: where `personContext` signs people up. */
/** @type {QuireServer | null} */
let currentServer = null;

/** @param {string} name */
export function emailOf(name) {
  return `${name.toLowerCase().replace(/[^a-z0-9]+/g, '.')}@e2e.test`;
}

/**
 * Sign up (first time on this server) or sign in through the app's own pages.
 * @param {import('playwright-core').Page} page
 * @param {QuireServer} server
 * @param {{ name: string }} user
 */
export async function signUpInBrowser(page, server, user) {
  const email = emailOf(user.name);
  if (server.accounts.has(user.name)) {
    await page.goto(server.url + '/signin');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
  } else {
    await page.goto(server.url + '/signup');
    await page.getByLabel('Name').fill(user.name);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    server.accounts.set(user.name, email);
  }
  await page.getByRole('heading', { name: 'Documents' }).waitFor({ timeout: 20_000 });
  return email;
}

export function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium).`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * A browser context for one person: their name and colour preset, console
 * errors collected for the failure report.
 * @param {import('playwright-core').Browser} browser
 * @param {{ name: string, color: string }} user
 */
export async function personContext(browser, user, viewport = { width: 1200, height: 800 }) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript((identity) => {
    try {
      localStorage.setItem('quire:user', JSON.stringify(identity));
    } catch {
      // Browser error pages have no storage.
    }
  }, user);
  const page = await context.newPage();
  /** @type {string[]} */
  const logs = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') logs.push(`[${user.name}] ${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (error) => logs.push(`[${user.name}] pageerror: ${error.message}`));
  if (!currentServer) throw new Error('personContext needs a server: call QuireServer.launch() first');
  const email = await signUpInBrowser(page, currentServer, user);
  return { context, page, logs, user, email };
}

export const ALICE = { name: 'Alice Arden', color: '#c2185b' };
export const BOB = { name: 'Bob Brook', color: '#1e6fd9' };

/**
 * Open a document and wait until its editor is on screen.
 * @param {import('playwright-core').Page} page
 * @param {string} baseUrl
 * @param {string} id
 */
export async function openDocument(page, baseUrl, id) {
  // Documents the harness made open through their share link (see the top).
  const token = currentServer?.url === baseUrl ? currentServer.links.get(id) : undefined;
  await page.goto(`${baseUrl}/d/${encodeURIComponent(id)}${token ? `#link=${token}` : ''}`);
  await page.locator('.ProseMirror').waitFor({ state: 'visible', timeout: 20_000 });
}

/** @param {import('playwright-core').Page} page */
export function saveState(page) {
  return page.getByTestId('save-state').getAttribute('data-state');
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} state one of connecting, saving, saved, offline, error
 */
export async function waitForSaveState(page, state, timeout = 20_000) {
  await page.locator(`[data-testid="save-state"][data-state="${state}"]`).waitFor({ state: 'attached', timeout });
}

/**
 * The document's text, one line per top-level block, without other people's
 * caret labels (which are widgets inside the editor's DOM).
 * @param {import('playwright-core').Page} page
 */
export function editorText(page) {
  return page.locator('.ProseMirror').evaluate((root) => {
    const clone = /** @type {HTMLElement} */ (root.cloneNode(true));
    clone.querySelectorAll('.collaboration-carets__caret, .ProseMirror-widget').forEach((el) => el.remove());
    return [...clone.children].map((el) => el.textContent ?? '').join('\n');
  });
}

/**
 * Text of each element matching `selector` inside the editor, without caret labels.
 * @param {import('playwright-core').Page} page
 * @param {string} selector
 */
export function editorTexts(page, selector) {
  return page.locator('.ProseMirror').evaluate((root, sel) => {
    return [...root.querySelectorAll(sel)].map((el) => {
      const clone = /** @type {HTMLElement} */ (el.cloneNode(true));
      clone.querySelectorAll('.collaboration-carets__caret, .ProseMirror-widget').forEach((w) => w.remove());
      return clone.textContent ?? '';
    });
  }, selector);
}

/**
 * Put the caret at the very end of the document.
 * @param {import('playwright-core').Page} page
 */
export async function focusEnd(page) {
  await page.locator('.ProseMirror').click();
  await page.keyboard.press('Control+End');
}

/**
 * Poll a condition until it holds or time runs out. This waits on a state,
 * not on a clock: it returns as soon as the condition is true.
 * @template T
 * @param {() => Promise<T>} probe
 * @param {(value: T) => boolean} done
 * @param {{ timeout?: number, message?: string }} [opts]
 * @returns {Promise<T>}
 */
export async function waitUntil(probe, done, { timeout = 20_000, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  /** @type {T} */
  let last;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeout} ms waiting for ${message}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Both editors show the same text, and it satisfies `check`.
 * @param {import('playwright-core').Page} pageA
 * @param {import('playwright-core').Page} pageB
 * @param {(text: string) => boolean} [check]
 */
export function waitForConvergence(pageA, pageB, check = () => true, timeout = 20_000) {
  return waitUntil(
    async () => [await editorText(pageA), await editorText(pageB)],
    ([a, b]) => a === b && check(a),
    { timeout, message: 'both editors to converge' },
  );
}

/**
 * Run a test body; on failure save a screenshot of every page and print
 * their console errors and the server log tail.
 * @param {import('node:test').TestContext} t
 * @param {() => Array<{ page: import('playwright-core').Page, logs: string[], user: { name: string } }>} people
 * @param {() => QuireServer | null} server
 * @param {() => Promise<void>} body
 */
export async function withDiagnostics(t, people, server, body) {
  try {
    await body();
  } catch (error) {
    mkdirSync(resultsDir, { recursive: true });
    const slug = t.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
    for (const person of people()) {
      const file = join(resultsDir, `${slug}-${person.user.name.split(' ')[0].toLowerCase()}.png`);
      try {
        await person.page.screenshot({ path: file, fullPage: true });
        console.error(`screenshot saved: ${file}`);
      } catch {
        // The page may be gone already.
      }
      if (person.logs.length) console.error(person.logs.join('\n'));
    }
    const s = server();
    if (s) console.error(`--- server log (tail) ---\n${s.log.slice(-4000)}`);
    throw error;
  }
}
