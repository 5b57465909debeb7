#!/usr/bin/env node
// The table of the peer runner (bench/peers.sh): reads its results.jsonl and
// prints Markdown with every figure per server, the ratios Quire / best peer
// and Quire / null, and issue 6's targets marked met or missed.
//
//   node bench/report.mjs OUT/results.jsonl
//
// Plain Node, no dependencies; re-run it on an existing results file at will.
// results.jsonl holds one record per line: `{"run": {…}}` headers, and
// `{"server", "case", "exit_code", "seconds", "command", "result", "error"}`
// or `{"server", "case", "na": reason}`, where `result` is the JSON line
// quire-bench printed. Several records for one (server, case) may exist (a
// re-run appends); the last one counts.

import { readFileSync } from 'node:fs'

// ---------------------------------------------------------------------------
// Every key read from quire-bench's JSON lines is here, so that a renamed key
// is fixed in one place. `get(result)` returns a number, boolean, string or
// undefined; `better` says which way is good (and enables the ratios).

const pick = (...vals) => vals.find((v) => v !== undefined && v !== null)
const mib = (kib) => (kib == null ? undefined : kib / 1024)
const coldDoc = (r, label) =>
  pick(r?.synced_ms?.[label], r?.docs?.find((d) => d.label === label)?.cold_ms)
const mibList = (kibs) => (kibs?.length ? kibs.map((k) => (k == null ? '—' : fmt(k / 1024))).join(' · ') : undefined)

const FIGURES = {
  fanout: {
    title: 'fanout',
    rows: [
      { id: 'delivered', label: 'delivered updates/s', get: (r) => r.delivered_per_sec, better: 'higher' },
      { id: 'p50', label: 'latency p50 (ms)', get: (r) => r.latency?.p50_ms, better: 'lower' },
      { id: 'p99', label: 'latency p99 (ms)', get: (r) => r.latency?.p99_ms, better: 'lower' },
      { id: 'p999', label: 'latency p99.9 (ms)', get: (r) => r.latency?.p999_ms, better: 'lower' },
      { id: 'max', label: 'latency max (ms)', get: (r) => r.latency?.max_ms, better: 'lower' },
      { id: 'sched_p99', label: 'latency p99 from scheduled send (ms)', get: (r) => r.latency_from_schedule?.p99_ms },
      { id: 'ack_p99', label: 'durable-ack p99 (ms)', get: (r) => r.ack_latency?.p99_ms },
      { id: 'lost', label: 'lost / duplicated', get: (r) => `${r.lost} / ${r.duplicates}` },
      { id: 'converged', label: 'converged', get: (r) => r.converged },
      { id: 'send_lag', label: 'generator send lag p99 (ms)', get: (r) => r.send_lag?.p99_ms },
      { id: 'cpu', label: 'server CPU (% of its core)', get: (r) => r.usage?.server?.cpu_percent, better: 'lower' },
      { id: 'rss', label: 'server RSS after (MiB)', get: (r) => mib(r.usage?.server?.rss_after_kib), better: 'lower' },
      { id: 'stall', label: 'machine CPU stall (% of the run; other load)', get: (r) => r.usage?.machine_cpu_stall_percent },
    ],
  },
  saturate: {
    title: 'saturate (highest delivered updates/s with p99 ≤ 50 ms, measured from each keystroke’s scheduled send)',
    rows: [
      { id: 'best', label: 'delivered updates/s', get: (r) => r.best?.delivered_per_sec, better: 'higher' },
      { id: 'rate', label: 'at keystrokes/s per writer', get: (r) => r.best?.rate },
      { id: 'p99', label: 'p99 there, from schedule (ms)', get: (r) => r.best?.p99_from_schedule_ms ?? r.best?.p99_ms },
      { id: 'p99_send', label: 'p99 there, from send (ms)', get: (r) => r.best?.p99_ms },
      { id: 'steps', label: 'steps', get: (r) => r.steps?.length },
      { id: 'stop', label: 'climb stopped by', get: (r) => pick(r.stopped_because, r.steps?.at(-1)?.verdict) },
    ],
  },
  'hot-document': {
    title: 'hot-document (1 document, 200 clients, 20 typing)',
    rows: [
      { id: 'delivered', label: 'delivered updates/s', get: (r) => r.delivered_per_sec, better: 'higher' },
      { id: 'p50', label: 'latency p50 (ms)', get: (r) => r.latency?.p50_ms, better: 'lower' },
      { id: 'p99', label: 'latency p99 (ms)', get: (r) => r.latency?.p99_ms, better: 'lower' },
      { id: 'lost', label: 'lost / duplicated', get: (r) => `${r.lost} / ${r.duplicates}` },
      { id: 'converged', label: 'converged', get: (r) => r.converged },
      { id: 'cpu', label: 'server CPU (% of its core)', get: (r) => r.usage?.server?.cpu_percent, better: 'lower' },
      { id: 'stall', label: 'machine CPU stall (% of the run; other load)', get: (r) => r.usage?.machine_cpu_stall_percent },
    ],
  },
  'connections-spread': {
    title: 'connections, each on its own document',
    rows: [
      { id: 'held', label: 'held / requested', get: (r) => `${r.held} / ${pick(r.requested, r.count)}` },
      { id: 'rss_per', label: 'server RSS per connection (KiB)', get: (r) => r.rss_per_connection_kib, better: 'lower' },
      { id: 'rss', label: 'server RSS with all held (MiB)', get: (r) => mib(r.rss_after_kib), better: 'lower' },
    ],
  },
  'connections-one': {
    title: 'connections, all on one document',
    rows: [
      { id: 'held', label: 'held / requested', get: (r) => `${r.held} / ${pick(r.requested, r.count)}` },
      { id: 'rss_per', label: 'server RSS per connection (KiB)', get: (r) => r.rss_per_connection_kib, better: 'lower' },
      { id: 'rss', label: 'server RSS with all held (MiB)', get: (r) => mib(r.rss_after_kib), better: 'lower' },
    ],
  },
  'connections-10k': {
    title: 'connections: 10,000 on one core (Quire)',
    rows: [
      { id: 'held', label: 'held / requested', get: (r) => `${r.held} / ${pick(r.requested, r.count)}` },
      { id: 'rss_per', label: 'server RSS per connection (KiB)', get: (r) => r.rss_per_connection_kib },
      { id: 'rss', label: 'server RSS with all held (MiB)', get: (r) => mib(r.rss_after_kib) },
    ],
  },
  trace: {
    title: 'trace (automerge-paper, one writer + one observer)',
    rows: [
      { id: 'rate', label: 'keystrokes/s (observer has everything)', get: (r) => r.keystrokes_per_sec, better: 'higher' },
      { id: 'patches', label: 'keystrokes replayed', get: (r) => r.patches },
      { id: 'exact', label: 'observer text == endContent', get: (r) => r.observer_text_ok },
      { id: 'reload', label: 'fresh connection == endContent', get: (r) => r.reload_ok },
      { id: 'durable', label: 'keystrokes/s, all durable', get: (r) => r.durable_keystrokes_per_sec },
      { id: 'p99', label: 'delivery p99 (ms)', get: (r) => r.delivery_latency?.p99_ms, better: 'lower' },
      { id: 'cpu', label: 'server CPU (s)', get: (r) => r.usage?.server?.cpu_seconds, better: 'lower' },
      { id: 'rss', label: 'server RSS after (MiB)', get: (r) => mib(r.usage?.server?.rss_after_kib), better: 'lower' },
      { id: 'stall', label: 'machine CPU stall (% of the run; other load)', get: (r) => r.usage?.machine_cpu_stall_percent },
    ],
  },
  coldload: {
    title: 'coldload (connect → synced after a restart)',
    rows: [
      { id: 'final', label: 'automerge-paper final state (ms)', get: (r) => coldDoc(r, 'final') },
      { id: 'history', label: 'automerge-paper as its full history (ms)', get: (r) => coldDoc(r, 'history') },
      { id: 'exact', label: 'text == endContent', get: (r) => (r.docs ? r.docs.every((d) => d.text_ok) : undefined) },
    ],
  },
  soak: {
    title: 'soak (the fan-out held for minutes; latency from each keystroke’s scheduled send; per interval below)',
    rows: [
      { id: 'delivered', label: 'delivered updates/s', get: (r) => r.delivered_per_sec, better: 'higher' },
      { id: 'shape', label: 'run', get: (r) => `${r.duration_s} s, ${r.intervals?.length} intervals, offered ${fmt(r.offered_deliveries_per_sec)}/s` },
      { id: 'p50', label: 'latency p50 (ms)', get: (r) => r.latency_from_schedule?.p50_ms, better: 'lower' },
      { id: 'p99', label: 'latency p99 (ms)', get: (r) => r.latency_from_schedule?.p99_ms, better: 'lower' },
      { id: 'p999', label: 'latency p99.9 (ms)', get: (r) => r.latency_from_schedule?.p999_ms, better: 'lower' },
      { id: 'p999_worst', label: 'worst interval’s p99.9 (ms)', get: (r) => r.verdict?.p999_ms_worst_interval, better: 'lower' },
      { id: 'max', label: 'latency max (ms)', get: (r) => r.latency_from_schedule?.max_ms, better: 'lower' },
      { id: 'send_p99', label: 'latency p99 from the actual send (ms)', get: (r) => r.latency?.p99_ms },
      { id: 'ack_p99', label: 'durable-ack p99 (ms)', get: (r) => r.ack_latency?.p99_ms },
      { id: 'send_lag', label: 'generator send lag p99 (ms)', get: (r) => r.send_lag?.p99_ms },
      { id: 'lost', label: 'lost / duplicated', get: (r) => `${r.lost} / ${r.duplicates}` },
      { id: 'converged', label: 'converged', get: (r) => r.converged },
      { id: 'rss_each', label: 'server RSS at each interval’s end (MiB)', get: (r) => mibList(r.intervals?.map((i) => i.server_rss_kib)) },
      { id: 'rss_flat', label: 'server RSS flat over the last three intervals', get: (r) => r.verdict?.rss_flat },
      { id: 'rss_spread', label: '  spread of those readings (MiB)', get: (r) => r.verdict?.rss_spread_mib, better: 'lower' },
      { id: 'compactions', label: 'compactions during the run', get: (r) => r.compactions },
      { id: 'cpu', label: 'server CPU (% of its core)', get: (r) => r.usage?.server?.cpu_percent, better: 'lower' },
      { id: 'gen_rss', label: 'generator RSS at each interval’s end (MiB)', get: (r) => mibList(r.intervals?.map((i) => i.generator_rss_kib)) },
      { id: 'stall', label: 'machine CPU stall (% of the run; other load)', get: (r) => r.usage?.machine_cpu_stall_percent },
    ],
  },
  burst: {
    title: 'burst (one client sends the keystrokes at once, a slow observer)',
    rows: [
      { id: 'identical', label: 'observer ends identical', get: (r) => r.identical },
      { id: 'keys', label: 'keystrokes', get: (r) => r.keystrokes },
      { id: 'seconds', label: 'seconds until identical', get: (r) => pick(r.seconds_to_identical, r.seconds), better: 'lower' },
      { id: 'reconnects', label: 'observer reconnects', get: (r) => r.observer_reconnects },
    ],
  },
}

const SERVERS = ['quire', 'y-websocket', 'hocuspocus', 'null']
const PEERS = ['y-websocket', 'hocuspocus']
const NAMES = { quire: 'Quire', 'y-websocket': 'y-websocket', hocuspocus: 'Hocuspocus', null: 'null relay' }

// ---------------------------------------------------------------------------

const file = process.argv[2]
if (!file || process.argv.includes('--help')) {
  console.error('usage: node bench/report.mjs OUT/results.jsonl')
  process.exit(2)
}
const runs = []
const records = new Map() // `${case}\t${server}` -> record
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line.trim()) continue
  let rec
  try {
    rec = JSON.parse(line)
  } catch {
    continue
  }
  if (rec.run) runs.push(rec.run)
  else if (rec.server && rec.case) records.set(`${rec.case}\t${rec.server}`, rec)
}
const get = (kase, server) => records.get(`${kase}\t${server}`)

const notes = []
const note = (text) => {
  const t = text.replace(/\s+/g, ' ').trim().slice(0, 300)
  let i = notes.indexOf(t)
  if (i < 0) i = notes.push(t) - 1
  return `[^${i + 1}]`
}

// The figure `row` of `server` in `kase`: { value, cell }.
function figure(kase, row, server) {
  const rec = get(kase, server)
  if (!rec) return { cell: '' }
  if (rec.na) return { cell: `n/a${note(`${kase}: ${rec.na}`)}` }
  if (!rec.result) {
    return { cell: `failed${note(`${NAMES[server]}, ${kase}: exit ${rec.exit_code}: ${rec.error ?? 'no JSON line'}`)}` }
  }
  let value
  try {
    value = row.get(rec.result)
  } catch {
    value = undefined
  }
  let cell = fmt(value)
  // A failed correctness check is marked on the scenario's first row.
  if (row === FIGURES[kase].rows[0] && (rec.result.ok === false || rec.exit_code !== 0)) {
    cell += ` ✗${note(`${NAMES[server]}, ${kase}: a correctness check failed (ok=false, exit ${rec.exit_code})${rec.error ? `: ${rec.error}` : ''}`)}`
  }
  return { value: typeof value === 'number' && Number.isFinite(value) ? value : undefined, cell }
}

function fmt(v) {
  if (v === undefined || v === null) return '—'
  if (typeof v === 'boolean') return v ? 'yes' : '**NO**'
  if (typeof v !== 'number') return String(v)
  if (!Number.isFinite(v)) return String(v)
  const a = Math.abs(v)
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

function ratio(a, b) {
  if (a === undefined || b === undefined || b === 0) return undefined
  return a / b
}
const fmtRatio = (r) => (r === undefined ? '—' : `${fmt(r)}×`)

// The best peer's value of a figure (highest or lowest, by `better`).
function bestPeer(kase, row) {
  let best
  for (const p of PEERS) {
    const { value } = figure(kase, row, p)
    if (value === undefined) continue
    if (!best || (row.better === 'higher' ? value > best.value : value < best.value)) best = { server: p, value }
  }
  return best
}

// ---------------------------------------------------------------------------

const out = []
const run = runs.at(-1)
out.push('### Peer runner: all figures')
out.push('')
if (run) {
  // A re-run of Quire alone records no peer versions; the peers measured
  // are those of the latest run that installed them.
  const v = runs.findLast((r) => Object.keys(r.versions ?? {}).length)?.versions ?? {}
  out.push(
    `Run of ${run.started} (${run.quick ? '**quick mode: tiny loads, the figures mean nothing**' : 'full mode'}), ` +
      `commit \`${run.commit}\`${run.dirty ? ' + uncommitted changes' : ''}; ${run.cpus} × ${run.cpu}, ` +
      `${run.mem_gib} GiB, Linux ${run.kernel}; Node ${v.node ?? '?'}, @y/websocket-server ${v['@y/websocket-server'] ?? '?'}, ` +
      `@hocuspocus/server ${v['@hocuspocus/server'] ?? '?'}, yjs ${v.yjs ?? '?'}. ` +
      'Each server pinned to core 0 (`taskset -c 0`), the generator to core 1, a fresh server per scenario.',
  )
  out.push('')
}
const present = Object.keys(FIGURES).filter((k) => SERVERS.some((s) => get(k, s)))
for (const kase of present) {
  const spec = FIGURES[kase]
  out.push(`**${spec.title}**`)
  out.push('')
  out.push(`| | ${SERVERS.map((s) => NAMES[s]).join(' | ')} | Quire / best peer | Quire / null |`)
  out.push(`|---|${SERVERS.map(() => '---:').join('|')}|---:|---:|`)
  for (const row of spec.rows) {
    const cells = SERVERS.map((s) => figure(kase, row, s))
    let vsPeer = ''
    let vsNull = ''
    if (row.better) {
      const q = cells[0].value
      const best = bestPeer(kase, row)
      vsPeer = best ? `${fmtRatio(ratio(q, best.value))} (vs ${NAMES[best.server]})` : '—'
      vsNull = fmtRatio(ratio(q, cells[3].value))
    }
    out.push(`| ${row.label} | ${cells.map((c) => c.cell).join(' | ')} | ${vsPeer} | ${vsNull} |`)
  }
  out.push('')
}

// The soak, interval by interval, one table per server.
for (const server of SERVERS) {
  const r = get('soak', server)?.result
  if (!r?.intervals?.length) continue
  out.push(`**soak per interval: ${NAMES[server]}** (latency from the scheduled send; RSS at the interval’s end, CPU over it)`)
  out.push('')
  out.push('| interval | end (s) | delivered/s | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | send lag p99 (ms) | lost | server RSS (MiB) | server CPU (%) | compactions |')
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const i of r.intervals) {
    const l = i.latency_from_schedule ?? {}
    const cells = [i.index, i.end_s, i.delivered_per_sec, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, i.send_lag?.p99_ms, i.lost,
      mib(i.server_rss_kib), i.server_cpu_percent, i.compactions]
    out.push(`| ${cells.map(fmt).join(' | ')} |`)
  }
  out.push('')
}

// ---------------------------------------------------------------------------
// Issue 6's targets. Each returns { quire, reference, verdict } as text.

const row = (kase, id) => FIGURES[kase].rows.find((r) => r.id === id)
const val = (kase, id, server) => figure(kase, row(kase, id), server).value
const okRun = (kase, server) => {
  const r = get(kase, server)
  return r && r.result && r.result.ok !== false && r.exit_code === 0
}

function vsBest(kase, id, factor, higher) {
  const q = val(kase, id, 'quire')
  const best = bestPeer(kase, row(kase, id))
  if (q === undefined || !best) return { quire: fmt(q), reference: best ? `${fmt(best.value)} (${NAMES[best.server]})` : '—', verdict: 'no data' }
  const r = q / best.value
  const met = higher ? r >= factor : r <= factor
  return {
    quire: fmt(q),
    reference: `${fmt(best.value)} (${NAMES[best.server]})`,
    ratio: `${fmt(r)}×`,
    met: met && okRun(kase, 'quire'),
  }
}

const targets = []
{
  const t = vsBest('saturate', 'best', 5, true)
  targets.push({ target: 'saturate: delivered updates/s at p99 ≤ 50 ms ≥ 5 × the best peer', ...t })
}
{
  const t = vsBest('fanout', 'p99', 0.5, false)
  const q = val('fanout', 'p99', 'quire')
  if (t.met !== undefined) t.met = t.met && q < 5
  targets.push({ target: 'fanout D=10 C=10 W=2 R=20: p99 ≤ half the best peer’s and < 5 ms', ...t })
}
for (const layout of ['spread', 'one']) {
  const t = vsBest(`connections-${layout}`, 'rss_per', 0.25, false)
  targets.push({
    target: `connections (${layout === 'spread' ? 'each on its own document' : 'all on one document'}): RSS per idle connection ≤ ¼ of the best peer’s`,
    ...t,
  })
}
{
  const t = vsBest('trace', 'rate', 3, true)
  if (t.met !== undefined) t.met = t.met && val('trace', 'rate', 'quire') !== undefined && get('trace', 'quire')?.result?.observer_text_ok === true
  targets.push({ target: 'trace: automerge-paper keystrokes/s ≥ 3 × the best peer, final text exact', ...t })
}
{
  const q = val('coldload', 'final', 'quire')
  targets.push({
    target: 'coldload of the automerge-paper document < 50 ms',
    quire: q === undefined ? '—' : `${fmt(q)} ms`,
    reference: '50 ms',
    met: q === undefined ? undefined : q < 50 && okRun('coldload', 'quire'),
  })
}
{
  const q = val('saturate', 'best', 'quire')
  const n = val('saturate', 'best', 'null')
  const r = ratio(q, n)
  targets.push({
    target: 'saturate as a fraction of the null server ≥ 50 %',
    quire: fmt(q),
    reference: `${fmt(n)} (null relay)`,
    ratio: r === undefined ? undefined : `${fmt(100 * r)} %`,
    met: r === undefined ? undefined : r >= 0.5 && okRun('saturate', 'quire'),
  })
}
{
  const rec = get('connections-10k', 'quire')
  const r = rec?.result
  const held = r?.held
  const want = pick(r?.requested, r?.count)
  targets.push({
    target: '10,000 concurrent connections on one core: held, with RSS reported',
    quire: r ? `${fmt(held)} held, ${fmt(mib(r.rss_after_kib))} MiB (${fmt(r.rss_per_connection_kib)} KiB each)` : '—',
    reference: want === undefined ? '10,000' : fmt(want),
    met: r ? held >= 10000 && held === want && r.rss_per_connection_kib != null : undefined,
  })
}
{
  const r = get('burst', 'quire')?.result
  targets.push({
    target: 'burst: Quire’s observer never diverges',
    quire: r ? `identical: ${fmt(r.identical)}` : '—',
    reference: PEERS.map((p) => `${NAMES[p]}: ${fmt(get('burst', p)?.result?.identical)}`).join(', '),
    met: r ? r.identical === true && r.ok !== false : undefined,
  })
}

out.push('**Issue 6’s targets**')
out.push('')
out.push('| target | Quire | reference | ratio | |')
out.push('|---|---:|---:|---:|---|')
for (const t of targets) {
  const verdict = t.met === undefined ? 'no data' : t.met ? '**met**' : '**missed**'
  out.push(`| ${t.target} | ${t.quire ?? '—'} | ${t.reference ?? '—'} | ${t.ratio ?? '—'} | ${verdict} |`)
}
if (run?.quick) {
  out.push('')
  out.push('Quick mode: the loads are tiny, so these verdicts only show that the pipeline works.')
}
out.push('')

// Issue 12's soak: 5 minutes at 18,000 deliveries/s with compaction on;
// every interval's p99.9 within 2× of y-websocket's same interval, and RSS
// flat over the last three.
{
  const q = get('soak', 'quire')?.result
  const y = get('soak', 'y-websocket')?.result
  if (q || y) {
    const p999 = (r) => r?.verdict?.p999_ms_per_interval ?? []
    const ratios = p999(q).map((v, i) => (p999(y)[i] ? v / p999(y)[i] : undefined))
    const worst = ratios.every((x) => x !== undefined) && ratios.length ? Math.max(...ratios) : undefined
    const fullSize = q && q.duration_s >= 300 && q.offered_deliveries_per_sec >= 18000
    const sameShape = q && y && q.intervals?.length === y.intervals?.length
    let met
    if (q && y && fullSize && sameShape && worst !== undefined) {
      met = worst <= 2 && q.verdict?.rss_flat === true && q.compactions > 0 && okRun('soak', 'quire')
    }
    out.push('**Issue 12’s soak**')
    out.push('')
    out.push('| target | Quire | y-websocket | worst ratio | |')
    out.push('|---|---:|---:|---:|---|')
    const desc = (r) =>
      r ? `p99.9 per interval ${p999(r).map(fmt).join(' · ')} ms; RSS flat: ${fmt(r.verdict?.rss_flat)}` : '—'
    out.push(
      `| 5 min at 18,000 deliveries/s, compaction on: every interval’s p99.9 ≤ 2 × y-websocket’s, RSS flat over the last three intervals | ` +
        `${desc(q)}${q ? `; ${fmt(q.compactions)} compactions` : ''}${q && !fullSize ? ` (a ${q.duration_s}-s run at ${fmt(q.offered_deliveries_per_sec)}/s: not the target’s size)` : ''} | ` +
        `${desc(y)} | ${worst === undefined ? '—' : `${fmt(worst)}×`} | ${met === undefined ? 'no data' : met ? '**met**' : '**missed**'} |`,
    )
    out.push('')
  }
}

if (notes.length) {
  notes.forEach((n, i) => out.push(`[^${i + 1}]: ${n.replaceAll('|', '\\|')}`))
  out.push('')
}

// The command behind each figure.
const cmds = [...records.values()].filter((r) => r.command)
if (cmds.length) {
  out.push('<details><summary>Commands (generator on core 1; each server started fresh on core 0, see bench/peers.sh)</summary>')
  out.push('')
  out.push('```')
  for (const r of cmds) {
    const cmd = r.command.replace(/--url \S+/, '--url $URL').replace(/--server-pid \d+/, '--server-pid $PID')
    out.push(`# ${r.case}, ${NAMES[r.server] ?? r.server} (${fmt(r.seconds)} s)`)
    out.push(cmd)
  }
  out.push('```')
  out.push('')
  out.push('</details>')
}

console.log(out.join('\n'))
