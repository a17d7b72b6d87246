import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { httpLoad } from '../lib/http-load.js'
import { cpuDelta, cpuPerOp, cpuSeconds, cpuTimes } from '../lib/proc.js'
import type { Context, Row, ScenarioResult } from '../lib/types.js'
import { API_KEY, DEVICE, Stack, measureRounds, newScenario, startBare, startGateway, startNginx, startNodeFloor, startUpstream, wants } from './common.js'

export const HTTP_SIZES: Array<[number, string]> = [[100, '100 B'], [10_240, '10 KB']]

interface Target {
  target: string
  label: string
  /** URL up to the size: `${base}${size}`. */
  base: string
  pid: number
  withChildren?: boolean
  headers?: Record<string, string>
  /** New headers before each measurement: a gateway access token expires (15 min by default), a run lasts longer. */
  refresh?: () => Promise<Record<string, string>>
}

/** One GET: the status, the body length and the x-request-id header. */
async function probe (url: string, headers: Record<string, string> = {}): Promise<{ status: number, length: number, requestId: string | null }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) })
  const body = await res.arrayBuffer()
  return { status: res.status, length: body.byteLength, requestId: res.headers.get('x-request-id') }
}

/**
 * A gateway access token for the bench device from `POST /auth/token`; throws with what the
 * gateway answered. `timeoutMs` is longer for a gateway under valgrind (the instructions scenario).
 */
export async function issueToken (gatewayBase: string, timeoutMs = 5_000): Promise<string> {
  const res = await fetch(`${gatewayBase}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ device_id: DEVICE.device_id, token: DEVICE.token }),
    signal: AbortSignal.timeout(timeoutMs)
  }).catch((err: Error) => { throw new Error(`POST /auth/token failed: ${err.message}`) })
  const text = await res.text()
  let token: string | undefined
  try { token = (JSON.parse(text) as { access_token?: string }).access_token } catch {}
  if (res.status === 200 && typeof token === 'string') return token
  throw new Error(`POST /auth/token answered ${res.status}${res.status === 404 ? ' (route auth not there yet)' : `: ${text.slice(0, 120)}`}`)
}

/**
 * Credentials for the `auth: required` route, when the gateway has them: a gateway access
 * token from `POST /auth/token` with the embedded device, and the configured `X-API-Key`.
 */
async function authTargets (gatewayBase: string, pid: number, result: ScenarioResult): Promise<Target[]> {
  const targets: Target[] = []
  const secure = `${gatewayBase}/secure/100`
  let tokenNote: string
  try {
    const bearer = async (): Promise<Record<string, string>> => ({ authorization: `Bearer ${await issueToken(gatewayBase)}` })
    const headers = await bearer()
    const check = await probe(secure, headers)
    if (check.status === 200) {
      targets.push({ target: 'gateway-token', label: 'gateway, auth: required (gateway token)', base: `${gatewayBase}/secure/`, pid, headers, refresh: bearer })
      tokenNote = ''
    } else {
      tokenNote = `POST /auth/token issued a token, but the auth: required route answered ${check.status} with it`
    }
  } catch (err) {
    tokenNote = (err as Error).message
  }
  if (tokenNote !== '') result.notes.push(`auth: required route with a gateway token not measured: ${tokenNote}.`)

  try {
    const check = await probe(secure, { 'x-api-key': API_KEY })
    if (check.status === 200) {
      targets.push({ target: 'gateway-apikey', label: 'gateway, auth: required (X-API-Key)', base: `${gatewayBase}/secure/`, pid, headers: { 'x-api-key': API_KEY } })
    } else {
      result.notes.push(`auth: required route with X-API-Key not measured: it answered ${check.status}.`)
    }
  } catch (err) {
    result.notes.push(`auth: required route with X-API-Key not measured: ${(err as Error).message}.`)
  }
  return targets
}

async function measure (ctx: Context, t: Target, size: number, kase: string, round: number, upstreamPid: number): Promise<Row> {
  const url = `${t.base}${size}`
  if (t.refresh !== undefined) t.headers = await t.refresh()
  const load = { url, connections: ctx.opts.connections, headers: t.headers }
  if (ctx.opts.warmupS > 0) await httpLoad(ctx.loadgen, { ...load, durationS: ctx.opts.warmupS })
  const la = loadavg()[0]
  const c0 = cpuTimes(t.pid, t.withChildren)
  const u0 = cpuSeconds(upstreamPid)
  const w0 = performance.now()
  const r = await httpLoad(ctx.loadgen, { ...load, durationS: ctx.opts.durationS })
  const wall = (performance.now() - w0) / 1000
  const used = cpuDelta(c0, cpuTimes(t.pid, t.withChildren))
  const upCpu = cpuSeconds(upstreamPid) - u0
  return {
    scenario: 'http',
    case: kase,
    target: t.target,
    label: t.label,
    value: r.rps,
    unit: 'req/s',
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    proxyCpuPct: ((used.user + used.kernel) / wall) * 100,
    upstreamCpuPct: (upCpu / wall) * 100,
    ...cpuPerOp(used, r.requests),
    errors: r.errors,
    loadavg: Math.round(la * 100) / 100,
    round,
    tool: r.tool
  }
}

export async function runHttp (ctx: Context): Promise<ScenarioResult> {
  const result = newScenario('http', ctx)
  const stack = new Stack()
  try {
    const up = await startUpstream(stack)
    const gw = await startGateway(ctx, stack, 'http', up.port)
    result.profile = gw.profile
    const gwBase = `http://127.0.0.1:${gw.port}`
    const targets: Target[] = []
    if (wants(ctx, 'direct')) targets.push({ target: 'direct', label: 'direct to the upstream', base: `http://127.0.0.1:${up.port}/`, pid: up.child.pid })
    if (wants(ctx, 'nginx')) {
      const nginx = await startNginx(ctx, stack, result, up.port)
      if (nginx !== undefined) targets.push({ target: 'nginx', label: 'nginx proxy_pass (keepalive, 1 worker)', base: `http://127.0.0.1:${nginx.port}/api/`, pid: nginx.pid, withChildren: true })
    }
    if (wants(ctx, 'bare')) {
      const bare = await startBare(stack, up.port)
      targets.push({ target: 'bare', label: 'bare Fastify + @fastify/http-proxy', base: `http://127.0.0.1:${bare.port}/api/`, pid: bare.child.pid })
    }
    if (wants(ctx, 'node')) {
      const node = await startNodeFloor(stack, up.port)
      targets.push({ target: 'node', label: 'plain Node http + undici Pool (no features: the Node floor)', base: `http://127.0.0.1:${node.port}/api/`, pid: node.child.pid })
    }
    if (wants(ctx, 'gateway')) targets.push({ target: 'gateway', label: 'gateway, auth: none', base: `${gwBase}/api/`, pid: gw.child.pid })
    if (wants(ctx, 'gateway-token') || wants(ctx, 'gateway-apikey')) {
      targets.push(...(await authTargets(gwBase, gw.child.pid, result)).filter(t => wants(ctx, t.target)))
    }

    // Every target answers the right bytes before it is measured.
    const ready: Target[] = []
    for (const t of targets) {
      try {
        const p = await probe(`${t.base}100`, t.headers)
        if (p.status !== 200 || p.length !== 100) throw new Error(`answered ${p.status} with ${p.length} bytes`)
        if (t.target.startsWith('gateway') && p.requestId === null) throw new Error('no x-request-id on the answer')
        ready.push(t)
      } catch (err) {
        result.notes.push(`${t.label} not measured: ${(err as Error).message}.`)
      }
    }

    await measureRounds(ctx, result, HTTP_SIZES, ready, async (t, size, kase, round) => await measure(ctx, t, size, kase, round, up.child.pid))
    if (ctx.loadgen === 'autocannon') {
      const why = ctx.machine.wrk === undefined ? 'wrk is not installed: `apt-get install -y nginx wrk`' : '--loadgen autocannon'
      result.notes.push(`Load generated with autocannon (${why}); autocannon needs more CPU than wrk on this 2-core box, so absolute numbers are lower.`)
    }
  } finally {
    await stack.close()
  }
  return result
}
