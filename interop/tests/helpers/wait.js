// Polling with a deadline: the tests never sleep to "give sync time"; they wait
// for a condition and fail with a description of what was last seen.

/**
 * Polls `fn` until it returns a truthy value (which is returned) or throws a
 * timeout error. `fn` may be async. Exceptions thrown by `fn` count as "not
 * yet" and the last one is reported on timeout.
 *
 * @template T
 * @param {() => T | Promise<T>} fn
 * @param {object|string} [opts] or just the failure message
 * @param {number} [opts.timeout=10000]
 * @param {number} [opts.interval=15]
 * @param {string} [opts.message]
 * @param {() => any} [opts.describe] state to print on timeout
 * @param {(e: any) => boolean} [opts.failFast] errors from `fn` to rethrow at once
 * @returns {Promise<T>}
 */
export async function waitFor (fn, opts = {}) {
  if (typeof opts === 'string') opts = { message: opts }
  const { timeout = 10_000, interval = 15, message = 'condition', describe, failFast } = opts
  const deadline = Date.now() + timeout
  let lastErr = null
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
      lastErr = null
    } catch (e) {
      if (failFast?.(e)) throw e
      lastErr = e
    }
    if (Date.now() >= deadline) break
    await sleep(interval)
  }
  let detail = ''
  if (describe) {
    try {
      const d = describe()
      detail = '\n  last seen: ' + (typeof d === 'string' ? d : JSON.stringify(d, null, 2))
    } catch (e) {
      detail = `\n  (describe failed: ${e})`
    }
  }
  if (lastErr) detail += `\n  last error: ${lastErr.stack ?? lastErr}`
  throw new Error(`timed out after ${timeout} ms waiting for: ${message}${detail}`)
}

/** Only for pacing (never to wait for sync). */
export function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves with the first emission of `event` on an ObservableV2 / EventEmitter, or rejects on timeout. */
export function once (emitter, event, timeout = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`timed out after ${timeout} ms waiting for event '${event}'`))
    }, timeout)
    const handler = (...args) => { clearTimeout(timer); off(); resolve(args) }
    const off = () => (emitter.off ?? emitter.removeListener).call(emitter, event, handler)
    emitter.on(event, handler)
  })
}

/** A small deterministic PRNG (mulberry32), so randomised tests are reproducible. */
export function prng (seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (arr) => arr[Math.floor(next() * arr.length)]
  }
}

/** A document name no other test uses. */
export function docName (prefix = 'doc') {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
}
