/**
 * Instructions per proxied request, counted with callgrind: the gateway, the bare
 * @fastify/http-proxy app and the plain-Node floor, each run under valgrind in turn. Unlike
 * req/s on a shared 2-core machine (rounds of one run differ by up to 2×), the machine's load
 * does not move these counts; V8's tiering does (see windowsRow), by up to a quarter. They count
 * work, not time: a cache miss or a system call costs the same one instruction here.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { callgrindWrapper, dumpCounts, dumpFiles, readDump, valgrindVersion, VALGRIND_INSTALL_HINT, zeroCounts, type DumpCounts } from '../lib/callgrind.js'
import { autocannonPath, httpLoad } from '../lib/http-load.js'
import { sleep, type Child } from '../lib/proc.js'
import type { Context, Row, ScenarioResult } from '../lib/types.js'
import { HTTP_SIZES } from './http.js'
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
}

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

async function load (url: string, connections: number, amount: number): Promise<number> {
  const r = await httpLoad('autocannon', { url, connections, durationS: 0, amount })
  return r.errors
}

async function measureTarget (ctx: Context, t: Target, upstreamPort: number, dir: string): Promise<Row[]> {
  const stack = new Stack()
  const outFile = join(dir, `${t.target}.out`)
  const rows: Row[] = []
  try {
    const { child, port } = await t.start(stack, callgrindWrapper(outFile))
    const base = `http://127.0.0.1:${port}${t.path}`
    ctx.log(`  instructions ${t.target}: warming up (${WARM_REQUESTS} requests under valgrind)`)
    for (let i = 0; i < WARM_REQUESTS / WARM_BATCH; i++) {
      await load(`${base}${HTTP_SIZES[i % HTTP_SIZES.length][0]}`, ctx.opts.connections, WARM_BATCH)
    }
    let dump = 0
    for (const [size, kase] of HTTP_SIZES) {
      // Several short windows rather than one long one, whose count moved by a quarter between
      // runs of the same gateway: some windows run hot functions as baseline code after a
      // deoptimization, and the median window is the optimized steady state (windowsRow). A
      // forced gc() before counting makes it worse: it drops compiled code and type feedback.
      const la = loadavg()[0]
      const windows: DumpCounts[] = []
      let errors = 0
      for (let w = 0; w < WINDOWS; w++) {
        zeroCounts(child.pid)
        errors += await load(`${base}${size}`, ctx.opts.connections, WINDOW_REQUESTS)
        dumpCounts(child.pid)
        windows.push(await waitForDump(outFile, ++dump))
      }
      const row = windowsRow(windows, WINDOW_REQUESTS)
      rows.push({
        scenario: 'instructions',
        case: kase,
        target: t.target,
        label: t.label,
        unit: 'instructions/req',
        ...row,
        errors,
        loadavg: Math.round(la * 100) / 100,
        round: 0,
        tool: 'autocannon'
      })
      const k = (n: number): string => `${Math.round(n / 1000)}k`
      ctx.log(`    ${kase}: main thread ${row.windowsPerOp.map(k).join(' ')} per request by window; outside GC ${k(row.value)} (median), GC ${k(row.gcPerOp)}, all threads ${k(row.allThreadsPerOp)} (means)${errors > 0 ? `, ${errors} errors` : ''}`)
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
    { target: 'bare', label: 'bare Fastify + @fastify/http-proxy', start: async (stack, w) => await startBare(stack, upstreamPort, w), path: '/api/' },
    { target: 'node', label: 'plain Node http + undici Pool (the Node floor)', start: async (stack, w) => await startNodeFloor(stack, upstreamPort, w), path: '/api/' },
    { target: 'gateway', label: 'gateway, auth: none', start: async (stack, w) => await startGateway(ctx, stack, 'instructions', upstreamPort, { wrapper: w }), path: '/api/' }
  ]
  const targets = all.filter(t => wants(ctx, t.target))
  const stack = new Stack()
  const dir = mkdtempSync(join(tmpdir(), 'bench-callgrind-'))
  try {
    upstreamPort = (await startUpstream(stack)).port
    for (const t of targets) {
      try {
        result.rows.push(...await measureTarget(ctx, t, upstreamPort, dir))
      } catch (err) {
        result.notes.push(`${t.label} not counted: ${(err as Error).message}`)
      }
    }
    result.notes.push(`${valgrind} (callgrind), ${ctx.opts.connections} autocannon connections; ${WARM_REQUESTS.toLocaleString('en-US')} requests of warm-up (both sizes in turn), then per size ${WINDOWS} counted windows of ${WINDOW_REQUESTS.toLocaleString('en-US')} requests.`)
  } finally {
    await stack.close()
    if (process.env.BENCH_KEEP_CALLGRIND === undefined) rmSync(dir, { recursive: true, force: true }); else ctx.log(`  callgrind files kept in ${dir}`)
  }
  return result
}
