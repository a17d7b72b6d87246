/**
 * Instructions per proxied request and per proxied WebSocket echo, counted with callgrind: the
 * gateway, the bare @fastify/http-proxy app and the plain-Node floor, each run under valgrind in turn. Unlike
 * req/s on a shared 2-core machine (rounds of one run differ by up to 2×), the machine's load
 * does not move these counts; V8's tiering does (see windowsRow), by up to a quarter. They count
 * work, not time: a cache miss or a system call costs the same one instruction here.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { callgrindWrapper, dumpCounts, dumpFiles, readDump, valgrindVersion, VALGRIND_INSTALL_HINT, zeroCounts, type DumpCounts } from '../lib/callgrind.js'
import { autocannonPath, httpLoad } from '../lib/http-load.js'
import { Child, sleep } from '../lib/proc.js'
import type { Context, Row, ScenarioResult } from '../lib/types.js'
import type { WsEchoOptions } from '../load/ws-echo.js'
import { HTTP_SIZES, issueToken } from './http.js'
import { WS_SIZES } from './ws.js'
import { Stack, median, newScenario, startBare, startGateway, startNodeFloor, startUpstream, wants } from './common.js'

/**
 * Requests before counting, both sizes in turn (2,000 at a time), so that V8's type feedback has
 * seen both before counting starts: a size first seen in a counted window deoptimizes hot
 * functions, which then run as baseline code (up to a quarter more instructions) until re-optimized.
 */
export const WARM_REQUESTS = 8_000
const WARM_BATCH = 2_000
/** Counted windows per size, and requests in each. */
export const WINDOWS = 5
export const WINDOW_REQUESTS = 1_000

interface Target {
  target: string
  label: string
  start: (stack: Stack, wrapper: string[]) => Promise<{ child: Child, port: number }>
  path: string
  /** The WebSocket echo route (through to the upstream's echo server), and the label of its rows. */
  wsPath: string
  wsLabel: string
  /** A second HTTP route counted after the WebSocket echo, with headers made once the proxy is up (the gateway's `auth: required` route). */
  auth?: { target: string, label: string, path: string, headers: (base: string) => Promise<Record<string, string>> }
}

/** The rows of one size: counts per request (or echo) of `amount` each, window by window. */
interface Counted { kase: string, unit: Row['unit'], windows: DumpCounts[], amount: number, errors: number, loadavg: number }

/** Waits until callgrind has written every thread's file of dump `n` (callgrind_control returns before). */
async function waitForDump (outFile: string, n: number): Promise<DumpCounts> {
  let lastError: Error | undefined
  let seen = 0
  for (let i = 0; i < 120; i++) {
    await sleep(500)
    // The last thread's file is written last: once the number of files holds for half a second,
    // the dump is complete, and it is read (and parsed) once.
    const files = dumpFiles(outFile, n).length
    if (files === 0 || files !== seen) {
      seen = files
      continue
    }
    try {
      return readDump(outFile, n)
    } catch (err) {
      lastError = err as Error
      seen = 0
    }
  }
  throw lastError ?? new Error(`callgrind dump ${n} did not complete`)
}

export interface WindowsSummary {
  /** Main thread outside the garbage collectors, per request: the median window. */
  value: number
  /** Main thread in the garbage collectors, per request: the mean over the windows. */
  gcPerOp: number
  /** Every thread, per request: the mean over the windows. */
  allThreadsPerOp: number
  /** Main thread in all, per request, window by window. */
  windowsPerOp: number[]
  threads: number
}

/**
 * The counts of several windows of `requests` requests each. The headline is the median window of
 * the main thread's work outside the collectors: a window in which hot functions ran as baseline
 * code after a deoptimization costs up to a quarter more, and the median leaves such windows out.
 * Collections come in bursts that land in one window or another, so they are averaged.
 */
export function windowsRow (windows: DumpCounts[], requests: number): WindowsSummary {
  const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length / requests
  return {
    value: median(windows.map(w => (w.main - w.mainGc) / requests)),
    gcPerOp: mean(windows.map(w => w.mainGc)),
    allThreadsPerOp: mean(windows.map(w => w.all)),
    windowsPerOp: windows.map(w => w.main / requests),
    threads: Math.max(...windows.map(w => w.threads))
  }
}

async function load (url: string, connections: number, amount: number, headers?: Record<string, string>): Promise<number> {
  const r = await httpLoad('autocannon', { url, connections, durationS: 0, amount, headers })
  return r.errors
}

/** Counts one window: zero the counters, run `work`, dump, and read the dump once it is complete. */
class Windows {
  private dump = 0
  constructor (private readonly pid: number, private readonly outFile: string) {}

  async count (work: () => Promise<number>): Promise<{ counts: DumpCounts, errors: number }> {
    zeroCounts(this.pid)
    const errors = await work()
    dumpCounts(this.pid)
    return { counts: await waitForDump(this.outFile, ++this.dump), errors }
  }
}

async function countHttp (ctx: Context, base: string, windows: Windows, headers?: Record<string, string>): Promise<Counted[]> {
  ctx.log(`    HTTP: warming up (${WARM_REQUESTS} requests under valgrind)`)
  for (let i = 0; i < WARM_REQUESTS / WARM_BATCH; i++) {
    await load(`${base}${HTTP_SIZES[i % HTTP_SIZES.length][0]}`, ctx.opts.connections, WARM_BATCH, headers)
  }
  const out: Counted[] = []
  for (const [size, kase] of HTTP_SIZES) {
    // Several short windows rather than one long one, whose count moved by a quarter between
    // runs of the same gateway: some windows run hot functions as baseline code after a
    // deoptimization, and the median window is the optimized steady state (windowsRow). A
    // forced gc() before counting makes it worse: it drops compiled code and type feedback.
    const counted: Counted = { kase, unit: 'instructions/req', windows: [], amount: WINDOW_REQUESTS, errors: 0, loadavg: loadavg()[0] }
    for (let w = 0; w < WINDOWS; w++) {
      const { counts, errors } = await windows.count(async () => await load(`${base}${size}`, ctx.opts.connections, WINDOW_REQUESTS, headers))
      counted.windows.push(counts)
      counted.errors += errors
    }
    out.push(counted)
  }
  return out
}

/** A closed-loop echo load per size into `loads`, connected for the whole count and idle between windows. */
async function startEchoLoads (ctx: Context, url: string, loads: Child[]): Promise<void> {
  for (const [size] of WS_SIZES) {
    const options: WsEchoOptions = { url, connections: ctx.opts.wsConnections, size, warmupMs: 0, durationMs: 30 * 60_000, counted: true }
    const { child } = await Child.start('load/ws-echo.js', { name: 'ws load', options, nofile: 65_536 })
    loads.push(child)
    const first = await child.nextOf(['connected', 'result'], 300_000)
    if (first.type === 'result') throw new Error(String(first.error))
  }
}

async function countWs (ctx: Context, url: string, windows: Windows): Promise<Counted[]> {
  const loads: Child[] = []
  // The loads report their errors so far; a window's errors are the difference.
  const reported = WS_SIZES.map(() => 0)
  /** Echoes exactly `amount` messages through load `i`; the errors during them. */
  const echo = async (i: number, amount: number): Promise<number> => {
    const done = await loads[i].request({ type: 'window', amount }, 'window-done', 600_000)
    // A window short of its amount (a client closed) would be divided by the wrong number.
    if (done.echoed !== amount) throw new Error(`WebSocket echo window: ${String(done.echoed)} of ${amount} echoes came back (${String(done.lastError)})`)
    const errors = (done.errors as number) - reported[i]
    reported[i] = done.errors as number
    return errors
  }
  try {
    await startEchoLoads(ctx, url, loads)
    ctx.log(`    WebSocket: warming up (${WARM_REQUESTS} echoes under valgrind)`)
    for (let i = 0; i < WARM_REQUESTS / WARM_BATCH; i++) await echo(i % loads.length, WARM_BATCH)
    const out: Counted[] = []
    for (const [i, [, sizeLabel]] of WS_SIZES.entries()) {
      const counted: Counted = { kase: `WebSocket ${sizeLabel}`, unit: 'instructions/msg', windows: [], amount: WINDOW_REQUESTS, errors: 0, loadavg: loadavg()[0] }
      for (let w = 0; w < WINDOWS; w++) {
        const { counts, errors } = await windows.count(async () => await echo(i, WINDOW_REQUESTS))
        counted.windows.push(counts)
        counted.errors += errors
      }
      out.push(counted)
    }
    return out
  } finally {
    await Promise.all(loads.map(async l => { await l.stop(5_000) }))
  }
}

/** What names a row: the target, and its HTTP and WebSocket labels. */
type RowOwner = Pick<Target, 'target' | 'label' | 'wsLabel'>

function countedRow (t: RowOwner, c: Counted): Row {
  return {
    scenario: 'instructions',
    case: c.kase,
    target: t.target,
    label: c.unit === 'instructions/req' ? t.label : t.wsLabel,
    unit: c.unit,
    ...windowsRow(c.windows, c.amount),
    errors: c.errors,
    loadavg: Math.round(c.loadavg * 100) / 100,
    round: 0,
    tool: c.unit === 'instructions/req' ? 'autocannon' : 'ws'
  }
}

/** The rows of one target; a failure to count its `auth` route goes into `notes` and keeps the rows counted before it. */
async function measureTarget (ctx: Context, t: Target, dir: string, notes: string[]): Promise<Row[]> {
  const stack = new Stack()
  const outFile = join(dir, `${t.target}.out`)
  const rows: Row[] = []
  try {
    const { child, port } = await t.start(stack, callgrindWrapper(outFile))
    const windows = new Windows(child.pid, outFile)
    ctx.log(`  instructions ${t.target}:`)
    const k = (n: number): string => `${Math.round(n / 1000)}k`
    const add = (owner: RowOwner, counted: Counted[]): void => {
      for (const c of counted) {
        const row = countedRow(owner, c)
        rows.push(row)
        ctx.log(`    ${c.kase}: main thread ${(row.windowsPerOp ?? []).map(k).join(' ')} per ${c.unit === 'instructions/req' ? 'request' : 'echo'} by window; outside GC ${k(row.value)} (median), GC ${k(row.gcPerOp ?? 0)}, all threads ${k(row.allThreadsPerOp ?? 0)} (means)${c.errors > 0 ? `, ${c.errors} errors` : ''}`)
      }
    }
    const base = `http://127.0.0.1:${port}`
    add(t, [
      ...await countHttp(ctx, `${base}${t.path}`, windows),
      ...await countWs(ctx, `ws://127.0.0.1:${port}${t.wsPath}`, windows)
    ])
    // Last, so that the rows counted before are as comparable with earlier runs as they were.
    if (t.auth !== undefined) {
      const auth = { ...t.auth, wsLabel: '' }
      ctx.log(`  instructions ${auth.target}:`)
      try {
        const headers = await auth.headers(base)
        add(auth, await countHttp(ctx, `${base}${auth.path}`, windows, headers))
      } catch (err) {
        notes.push(`${auth.label} not counted: ${(err as Error).message}`)
      }
    }
  } finally {
    await stack.close()
  }
  return rows
}

export async function runInstructions (ctx: Context): Promise<ScenarioResult> {
  const result = newScenario('instructions', ctx)
  result.options = { ...result.options, rounds: 1 }
  const valgrind = valgrindVersion()
  if (valgrind === undefined || autocannonPath() === undefined) {
    result.available = false
    result.notes.push(valgrind === undefined ? `valgrind is not installed (\`${VALGRIND_INSTALL_HINT}\`).` : 'autocannon is not installed (npm install).')
    return result
  }
  let upstreamPort = 0
  const all: Target[] = [
    { target: 'bare', label: 'bare Fastify + @fastify/http-proxy', start: async (stack, w) => await startBare(stack, upstreamPort, w), path: '/api/', wsPath: '/wsecho/echo', wsLabel: 'bare Fastify + @fastify/http-proxy (websocket: true)' },
    { target: 'node', label: 'plain Node http + undici Pool (the Node floor)', start: async (stack, w) => await startNodeFloor(stack, upstreamPort, w), path: '/api/', wsPath: '/wsecho/echo', wsLabel: 'plain Node TCP relay after the upgrade (the Node floor)' },
    {
      target: 'gateway',
      label: 'gateway, auth: none',
      start: async (stack, w) => await startGateway(ctx, stack, 'instructions', upstreamPort, { wrapper: w }),
      path: '/api/',
      wsPath: '/wsecho/echo',
      wsLabel: 'gateway route, websocket: true',
      // A token lives 15 minutes by default: issued just before its route is counted.
      auth: { target: 'gateway-token', label: 'gateway, auth: required (gateway token)', path: '/secure/', headers: async (base) => ({ authorization: `Bearer ${await issueToken(base, 120_000)}` }) }
    }
  ]
  const targets = all.filter(t => wants(ctx, t.target))
  const stack = new Stack()
  const dir = mkdtempSync(join(tmpdir(), 'bench-callgrind-'))
  try {
    upstreamPort = (await startUpstream(stack)).port
    for (const t of targets) {
      try {
        result.rows.push(...await measureTarget(ctx, t, dir, result.notes))
      } catch (err) {
        result.notes.push(`${t.label} not counted: ${(err as Error).message}`)
      }
    }
    result.notes.push(`${valgrind} (callgrind), ${ctx.opts.connections} autocannon connections; ${WARM_REQUESTS.toLocaleString('en-US')} requests of warm-up (both sizes in turn), then per size ${WINDOWS} counted windows of ${WINDOW_REQUESTS.toLocaleString('en-US')} requests; WebSocket: ${ctx.opts.wsConnections} closed-loop echo clients per size, ${WARM_REQUESTS.toLocaleString('en-US')} echoes of warm-up (both sizes in turn), then per size ${WINDOWS} windows of ${WINDOW_REQUESTS.toLocaleString('en-US')} echoes, every client idle between windows.`)
  } finally {
    await stack.close()
    if (process.env.BENCH_KEEP_CALLGRIND === undefined) rmSync(dir, { recursive: true, force: true }); else ctx.log(`  callgrind files kept in ${dir}`)
  }
  return result
}
