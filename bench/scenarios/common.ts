import { createHash } from 'node:crypto'
import { join } from 'node:path'
import WebSocket from 'ws'
import { Child } from '../lib/proc.js'
import { buildNativeRelay } from '../lib/native.js'
import { Nginx } from '../lib/nginx.js'
import { gitCommit, wsMasking } from '../lib/system.js'
import type { Context, Row, ScenarioName, ScenarioResult } from '../lib/types.js'

export const DEVICE = { device_id: 'bench', token: 'bench-token', user_id: 'u' }
export const API_KEY = 'bench-api-key-0123456789'

/** Cleanups run in reverse order, whatever happened. */
export class Stack {
  private readonly fns: Array<() => Promise<void>> = []
  push (fn: () => Promise<void>): void { this.fns.push(fn) }
  async close (): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) await fn().catch(() => {})
  }
}

/** Whether a target is measured in this run (--targets; --profile measures only the gateway by default). */
export function wants (ctx: Context, target: string): boolean {
  if (ctx.opts.targets !== undefined) return ctx.opts.targets.includes(target)
  return !ctx.opts.profile || target.startsWith('gateway')
}

export function newScenario (name: ScenarioName, ctx: Context): ScenarioResult {
  return {
    name,
    ranAt: new Date().toISOString(),
    commit: gitCommit().commit,
    // Every process of the scenario runs on the runner's Node (children are spawned with process.execPath).
    node: process.version,
    // Children share the runner's environment and node_modules, so they mask as it would.
    wsMasking: wsMasking(),
    seconds: 0,
    options: { durationS: ctx.opts.durationS, warmupS: ctx.opts.warmupS, rounds: ctx.opts.rounds },
    rows: [],
    available: true,
    notes: []
  }
}

/** A bench server process (bench/servers/), stopped with the stack, and the port it listens on. */
async function startServer (stack: Stack, script: string, name: string, options?: Record<string, unknown>, wrapper?: string[]): Promise<{ child: Child, port: number }> {
  const { child, ready } = await Child.start(script, { name, options: wrapped(options ?? {}, wrapper), wrapper }, readyTimeout(wrapper))
  stack.push(async () => await child.stop())
  return { child, port: ready.port as number }
}

/** Under a wrapper (valgrind) a server starts tens of times slower: no plugin timeout, a longer wait. */
function wrapped (options: Record<string, unknown>, wrapper: string[] | undefined): Record<string, unknown> {
  return wrapper === undefined ? options : { ...options, pluginTimeout: 0 }
}

function readyTimeout (wrapper: string[] | undefined): number {
  return wrapper === undefined ? 30_000 : 300_000
}

export async function startUpstream (stack: Stack): Promise<{ child: Child, port: number }> {
  return await startServer(stack, 'servers/upstream.js', 'upstream')
}

/**
 * The gateway's bench config: default plugins on (request id always; metrics enabled; a
 * top-level rate limit too high to trigger), an `auth: none` route, an `auth: required`
 * route, a WebSocket route, and the embedded bench device.
 */
export function gatewayOverrides (upstreamPort: number): Record<string, unknown> {
  const upstream = `http://127.0.0.1:${upstreamPort}`
  return {
    metrics_enabled: true,
    rate_limit: { max: 1_000_000_000, window: '1m' },
    routes: [
      { prefix: '/api', upstream, auth: 'none' },
      { prefix: '/secure', upstream, auth: 'required' },
      { prefix: '/wsecho', upstream, websocket: true, auth: 'none' }
    ],
    devices: [DEVICE],
    api_keys: [{ key_sha256: createHash('sha256').update(API_KEY).digest('hex'), user_id: 'u' }],
    jwt_secret: 'bench-only-jwt-secret-0123456789abcdef',
    hello_timeout: '10m'
  }
}

export async function startGateway (ctx: Context, stack: Stack, scenario: ScenarioName, upstreamPort: number, extra: { nodeArgs?: string[], nofile?: number, wrapper?: string[] } = {}): Promise<{ child: Child, port: number, profile?: string }> {
  // The heap flags of `npm start` (package.json): the gateway runs as it is deployed.
  const nodeArgs = ['--max-semi-space-size=16', '--initial-old-space-size=64', ...(extra.nodeArgs ?? [])]
  let profile: string | undefined
  if (ctx.opts.profile) {
    const name = `${scenario}-gateway-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`
    profile = join(ctx.profileDir, name)
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${name}`)
  }
  const { child, ready } = await Child.start('servers/gateway.js', {
    name: 'gateway',
    nodeArgs,
    nofile: extra.nofile,
    wrapper: extra.wrapper,
    options: wrapped({ overrides: gatewayOverrides(upstreamPort), optionalKeys: ['api_keys', 'jwt_secret', 'devices', 'hello_timeout'] }, extra.wrapper)
  }, readyTimeout(extra.wrapper))
  for (const d of ready.dropped as string[]) ctx.log(`  gateway config: dropped ${d}`)
  stack.push(async () => await child.stop())
  return { child, port: ready.port as number, profile }
}

export async function startBare (stack: Stack, upstreamPort: number, wrapper?: string[]): Promise<{ child: Child, port: number }> {
  return await startServer(stack, 'servers/bare-proxy.js', 'bare-proxy', { upstream: `http://127.0.0.1:${upstreamPort}` }, wrapper)
}

/** The Node floor: plain http + undici Pool, and a raw TCP relay for upgrades (bench/servers/node-proxy.ts). */
export async function startNodeFloor (stack: Stack, upstreamPort: number, wrapper?: string[], nativeRelay?: string): Promise<{ child: Child, port: number }> {
  return await startServer(stack, 'servers/node-proxy.js', 'node-proxy', { upstream: `http://127.0.0.1:${upstreamPort}`, nativeRelay }, wrapper)
}

/** The Node floor relaying WebSockets in C (bench/native), or undefined with a note saying why it was skipped. */
export async function startNativeFloor (stack: Stack, result: ScenarioResult, upstreamPort: number): Promise<{ child: Child, port: number } | undefined> {
  try {
    return await startNodeFloor(stack, upstreamPort, undefined, await buildNativeRelay())
  } catch (err) {
    result.notes.push(`native relay skipped: ${(err as Error).message}`)
    return undefined
  }
}

/** nginx, or undefined with a note saying why it was skipped. */
export async function startNginx (ctx: Context, stack: Stack, result: ScenarioResult, upstreamPort: number): Promise<Nginx | undefined> {
  if (!ctx.opts.nginx) {
    result.notes.push('nginx comparison turned off (--no-nginx).')
    return undefined
  }
  if (!ctx.nginxAvailable) {
    result.notes.push('nginx comparison skipped: nginx is not installed (`apt-get install -y nginx wrk`).')
    return undefined
  }
  try {
    const nginx = await Nginx.start(upstreamPort)
    stack.push(async () => await nginx.stop())
    return nginx
  } catch (err) {
    result.notes.push(`nginx comparison skipped: ${(err as Error).message}`)
    return undefined
  }
}

/** Opens `/ws`, says hello with the bench device and resolves with the auth_result (or why not). */
export async function probeWs (url: string): Promise<{ ok: boolean, detail: string }> {
  return await new Promise(resolve => {
    const socket = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 3_000 })
    const done = (ok: boolean, detail: string): void => {
      clearTimeout(timer)
      socket.terminate()
      resolve({ ok, detail })
    }
    const timer = setTimeout(() => done(false, 'no auth_result within 3 s'), 3_000)
    socket.on('unexpected-response', (_req, res) => { res.resume(); done(false, `GET /ws answered ${res.statusCode ?? '?'}`) })
    socket.on('error', (err) => done(false, err.message))
    socket.on('open', () => socket.send(JSON.stringify({ type: 'hello', device_id: DEVICE.device_id, token: DEVICE.token })))
    socket.on('message', (data: Buffer) => {
      const text = data.toString()
      let frame: { type?: string, allowed?: boolean }
      try { frame = JSON.parse(text) } catch { return done(false, `not JSON: ${text.slice(0, 100)}`) }
      done(frame.type === 'auth_result' && frame.allowed === true, text.slice(0, 200))
    })
  })
}

/**
 * The targets in the order of round `round`: each round starts one target later, so no target
 * always runs in the same place of a round (right after the same neighbour, or late in a long
 * stretch of load).
 */
export function roundOrder<T> (targets: readonly T[], round: number): T[] {
  return targets.map((_, i) => targets[(i + round) % targets.length])
}

/**
 * Every (size, target) pair measured once per round, rounds interleaved (every target, then
 * again), so each round's rows were taken under the same conditions on the box. A failed
 * measurement becomes a note and the run goes on.
 */
export async function measureRounds<T extends { target: string, label: string }> (
  ctx: Context,
  result: ScenarioResult,
  sizes: Array<[number, string]>,
  targets: T[],
  measure: (t: T, size: number, kase: string, round: number) => Promise<Row>
): Promise<void> {
  for (let round = 0; round < ctx.opts.rounds; round++) {
    const order = roundOrder(targets, round)
    for (const [size, kase] of sizes) {
      for (const t of order) {
        ctx.log(`  ${result.name} ${kase} ${t.target}${ctx.opts.rounds > 1 ? ` (round ${round + 1})` : ''}`)
        try {
          const row = await measure(t, size, kase, round)
          result.rows.push(row)
          ctx.log(`    ${Math.round(row.value)} ${row.unit}, p50 ${row.p50Ms?.toFixed(2)} ms, p99 ${row.p99Ms?.toFixed(2)} ms, CPU ${row.proxyCpuPct?.toFixed(0)}%${row.errors > 0 ? `, ${row.errors} errors` : ''}`)
        } catch (err) {
          result.notes.push(`${t.label}, ${kase}: ${(err as Error).message}`)
        }
      }
    }
  }
}

export function median (values: number[]): number {
  const v = values.filter(n => Number.isFinite(n)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

/** One row per (case, target): the median over rounds. */
export function medianRows (rows: Row[]): Row[] {
  const groups = new Map<string, Row[]>()
  for (const r of rows) {
    const key = `${r.scenario}|${r.case}|${r.target}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  return [...groups.values()].map(g => {
    if (g.length === 1) return g[0]
    const m = (pick: (r: Row) => number | undefined): number | undefined => {
      const vals = g.map(pick).filter((n): n is number => n !== undefined)
      return vals.length > 0 ? median(vals) : undefined
    }
    return {
      ...g[0],
      value: m(r => r.value) as number,
      p50Ms: m(r => r.p50Ms),
      p99Ms: m(r => r.p99Ms),
      proxyCpuPct: m(r => r.proxyCpuPct),
      upstreamCpuPct: m(r => r.upstreamCpuPct),
      loadCpuPct: m(r => r.loadCpuPct),
      cpuUsPerOp: m(r => r.cpuUsPerOp),
      kernelUsPerOp: m(r => r.kernelUsPerOp),
      userUsPerOp: m(r => r.userUsPerOp),
      errors: g.reduce((n, r) => n + r.errors, 0),
      loadavg: m(r => r.loadavg) as number,
      round: -1
    }
  })
}

export function find (rows: Row[], scenario: ScenarioName, kase: string, target: string): Row | undefined {
  return rows.find(r => r.scenario === scenario && r.case === kase && r.target === target)
}
