// Starts and stops real `quire serve` processes for the interop tests.
//
// Quire refuses unauthenticated sockets, so every server gets an owner account,
// signed up through the real API once the server is ready (signed in again
// after a restart). Clients connect with the owner's access cookie and a
// same-origin `Origin` header (see `ownerOf`, used by helpers/clients.js), and
// `ensureDoc` creates a named document through the API before a client opens
// it. Servers run with `--insecure-fast-password-hashing`, a test-only flag.
//
// Every server gets its own temporary data directory and listens on a port the
// OS picks (`--listen 127.0.0.1:0`; the port is read from the ready line the
// server prints). A restart reuses the same port and data directory. Every
// process ever started is SIGKILLed when the test process exits, whatever the
// reason, so a failing test never leaves a server behind.

import { spawn } from 'node:child_process'
import { test } from 'node:test'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const INTEROP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const QUIRE_BIN = path.resolve(INTEROP_DIR, process.env.QUIRE_BIN || '../target/debug/quire')

const READY = /Quire is running at http:\/\/([\d.]+):(\d+)\//
export const OWNER_EMAIL = 'owner@interop.test'
export const PASSWORD = 'interop password 1'
/** Every test server's `--metrics-token`: `/metrics` answers only to it. */
export const METRICS_TOKEN = 'interop-metrics-token'

/** `{ cookie, origin, httpUrl }` of each running server's owner, by port. */
const owners = new Map()

/** The signed-in owner of the server listening on `port`, if any. */
export function ownerOf (port) {
  return owners.get(Number(port))
}

/**
 * Signs `email` up on the server at `httpUrl` (or in, if the account exists);
 * returns `{ cookie, origin, httpUrl, user }` with the access cookie as
 * `name=value`.
 */
export async function signIn (httpUrl, email, name = email.split('@')[0]) {
  const post = (path, body) => fetch(`${httpUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: httpUrl },
    body: JSON.stringify(body)
  })
  let r = await post('/api/auth/signup', { email, password: PASSWORD, name })
  if (r.status === 409) r = await post('/api/auth/login', { email, password: PASSWORD })
  if (!r.ok) throw new Error(`signing in ${email} failed: ${r.status} ${await r.text()}`)
  const cookie = r.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith('quire_access='))
  if (!cookie) throw new Error('no access cookie in the sign-in response')
  const { user } = await r.json()
  return { cookie, origin: httpUrl, httpUrl, user }
}

/** Creates document `id` as `owner` unless it exists; other answers are ignored (tests of bad ids). */
export async function ensureDoc (owner, id) {
  await fetch(`${owner.httpUrl}/api/documents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: owner.origin, cookie: owner.cookie },
    body: JSON.stringify({ id, title: id })
  })
}
const START_TIMEOUT_MS = 20_000
const LOG_LINES = 200

/** Every child process still running, killed on exit. */
const live = new Set()
/** Temporary data directories not yet removed, removed on exit. */
const tempDirs = new Set()

function killAll () {
  for (const child of live) {
    try { child.kill('SIGKILL') } catch {}
  }
  live.clear()
  for (const dir of tempDirs) {
    try { fs.rmSync(dir, { recursive: true, force: true }) } catch {}
  }
  tempDirs.clear()
}
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll()
    process.exit(128 + (os.constants.signals[sig] ?? 1))
  })
}

export function makeTempDir (prefix = 'quire-interop-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

export class QuireServer {
  /**
   * @param {object} [opts]
   * @param {string} [opts.dataDir] defaults to a fresh temporary directory (removed by `cleanup`)
   * @param {string[]} [opts.args] extra `quire serve` flags
   * @param {Record<string,string>} [opts.env]
   */
  constructor ({ dataDir, args = [], env = {} } = {}) {
    this.ownDataDir = !dataDir
    this.dataDir = dataDir ?? makeTempDir()
    if (this.ownDataDir) tempDirs.add(this.dataDir)
    this.args = args
    this.env = env
    this.port = 0
    this.child = null
    this.exit = null // promise of { code, signal } for the current process
    this.log = []
    this.starts = 0
  }

  get httpUrl () { return `http://127.0.0.1:${this.port}` }
  /** Base URL for WebsocketProvider: the room name is appended as `/{room}`. */
  get wsBase () { return `ws://127.0.0.1:${this.port}/ws` }
  wsUrl (doc, query = '') { return `${this.wsBase}/${doc}${query ? '?' + query : ''}` }
  get running () { return this.child !== null && this.child.exitCode === null && this.child.signalCode === null }

  /** The last lines the server logged, for failure messages. */
  logTail (n = 40) { return this.log.slice(-n).join('\n') }

  _pushLog (prefix, chunk) {
    // Chunks split lines anywhere: keep the partial last line per stream.
    const key = `_partial_${prefix}`
    const lines = ((this[key] ?? '') + chunk.toString()).split('\n')
    this[key] = lines.pop()
    for (const line of lines) {
      // eslint-disable-next-line no-control-regex
      const clean = line.replace(/\x1b\[[0-9;]*m/g, '')
      if (clean.trim() === '') continue
      this.log.push(`[quire#${this.starts} ${prefix}] ${clean}`)
      if (this.log.length > LOG_LINES) this.log.shift()
    }
  }

  async start () {
    if (this.running) throw new Error('quire is already running')
    if (!fs.existsSync(QUIRE_BIN)) {
      throw new Error(`quire binary not found at ${QUIRE_BIN}: run \`cargo build -p quire-server\` in the repository root, or set QUIRE_BIN`)
    }
    // Right after a kill the port can briefly be unavailable; retry a few times.
    let lastErr
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this._startOnce()
        this.owner = await signIn(this.httpUrl, OWNER_EMAIL, 'Interop')
        owners.set(this.port, this.owner)
        return this
      } catch (e) {
        lastErr = e
        if (!this.port || !/in use|AddrInUse/i.test(String(e.message))) break
        await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)))
      }
    }
    throw lastErr
  }

  _startOnce () {
    this.starts++
    const listen = `127.0.0.1:${this.port}`
    // The fuzz and bad-input tests open hundreds of sockets a second as one
    // user; the per-user connect limit is tested in the Rust suite.
    const args = ['serve', '--insecure-fast-password-hashing', '--ws-connect-burst', '100000',
      '--listen', listen, '--data-dir', this.dataDir, ...this.args]
    const child = spawn(QUIRE_BIN, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, QUIRE_LOG: process.env.QUIRE_LOG ?? 'info', NO_COLOR: '1', RUST_BACKTRACE: process.env.QUIRE_RUST_BACKTRACE ?? '0', QUIRE_METRICS_TOKEN: METRICS_TOKEN, ...this.env }
    })
    live.add(child)
    this.child = child
    this.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child)
        resolve({ code, signal })
      })
    })
    child.stderr.on('data', (c) => this._pushLog('err', c))
    return new Promise((resolve, reject) => {
      let stdout = ''
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`quire did not print its ready line within ${START_TIMEOUT_MS} ms\n${this.logTail()}`))
      }, START_TIMEOUT_MS)
      child.stdout.on('data', (c) => {
        this._pushLog('out', c)
        if (stdout === null) return
        stdout += c.toString()
        const m = READY.exec(stdout)
        if (m) {
          stdout = null
          clearTimeout(timer)
          const port = Number(m[2])
          if (this.port && port !== this.port) {
            reject(new Error(`quire restarted on port ${port}, expected ${this.port}`))
            return
          }
          this.port = port
          resolve()
        }
      })
      child.once('error', (e) => { clearTimeout(timer); reject(e) })
      this.exit.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(new Error(`quire exited before it was ready (code ${code}, signal ${signal})\n${this.logTail()}`))
      })
    })
  }

  /** Creates document `id` (owned by this server's owner) if it does not exist. */
  ensureDoc (id) {
    return ensureDoc(this.owner, id)
  }

  /** Kills the process with SIGKILL (a crash) and waits until it is gone. */
  async crash () {
    if (!this.running) return
    this.child.kill('SIGKILL')
    await this.exit
  }

  /**
   * Sends SIGTERM and waits for the process to exit by itself.
   * @returns {Promise<{code: number|null, signal: string|null, ms: number}>}
   */
  async terminate (timeoutMs = 10_000) {
    if (!this.running) throw new Error('quire is not running')
    const started = Date.now()
    this.child.kill('SIGTERM')
    let timer
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs) })
    const r = await Promise.race([this.exit, timeout])
    clearTimeout(timer)
    if (r === null) {
      await this.crash()
      throw new Error(`quire did not exit within ${timeoutMs} ms of SIGTERM\n${this.logTail()}`)
    }
    return { ...r, ms: Date.now() - started }
  }

  /** Restart on the same port and data directory. */
  async restart ({ signal = 'SIGKILL' } = {}) {
    if (this.running) {
      if (signal === 'SIGKILL') await this.crash()
      else await this.terminate()
    }
    return this.start()
  }

  /** Stops the server (if running) and removes its data directory if we made it. */
  async cleanup () {
    if (this.running) {
      try { await this.terminate(5000) } catch { await this.crash() }
    }
    if (this.ownDataDir) {
      fs.rmSync(this.dataDir, { recursive: true, force: true })
      tempDirs.delete(this.dataDir)
    }
  }
}

/**
 * Starts a server for one test and registers its clean-up on the test.
 * @param {import('node:test').TestContext} t
 * @param {ConstructorParameters<typeof QuireServer>[0]} [opts]
 */
export async function startServer (t, opts) {
  const server = new QuireServer(opts)
  t.after(() => server.cleanup())
  t.quireServers?.push(server)
  await server.start()
  return server
}

/**
 * `node:test`'s `test`, with the log tail of every server the test started
 * (through `startServer`) appended to the failure message.
 * @param {string} name
 * @param {(t: import('node:test').TestContext) => Promise<void>} fn
 */
export function quireTest (name, fn) {
  // A bound on every test, so a hang is a failure with a message, not a stuck run.
  const timeout = Number(process.env.QUIRE_TEST_TIMEOUT_MS ?? 90_000)
  return test(name, { timeout }, async (t) => {
    t.quireServers = []
    try {
      await fn(t)
    } catch (e) {
      const logs = t.quireServers.map((s, i) => `--- quire server ${i + 1} (port ${s.port}, data ${s.dataDir}), last log lines ---\n${s.logTail(25)}`)
      if (logs.length && e && typeof e === 'object') {
        try { e.message = `${e.message}\n${logs.join('\n')}` } catch {}
      }
      throw e
    }
  })
}
