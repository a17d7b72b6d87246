import { loadavg } from 'node:os'
import { Child, cpuDelta, cpuPerOp, cpuSeconds, cpuTimes } from '../lib/proc.js'
import type { Context, Row, ScenarioResult } from '../lib/types.js'
import type { WsEchoOptions } from '../load/ws-echo.js'
import { Stack, measureRounds, newScenario, startBare, startGateway, startNativeFloor, startNginx, startNodeFloor, startUpstream, wants } from './common.js'

export const WS_SIZES: Array<[number, string]> = [[64, '64 B'], [4096, '4 KB']]

interface Target { target: string, label: string, url: string, pid: number, withChildren?: boolean }

async function measure (ctx: Context, t: Target, size: number, kase: string, round: number, upstreamPid: number): Promise<Row> {
  const options: WsEchoOptions = {
    url: t.url,
    connections: ctx.opts.wsConnections,
    size,
    warmupMs: ctx.opts.warmupS * 1000,
    durationMs: ctx.opts.durationS * 1000
  }
  const { child } = await Child.start('load/ws-echo.js', { name: 'ws load', options, nofile: 65_536 })
  try {
    const first = await child.nextOf(['measuring', 'result'], options.warmupMs + 60_000)
    if (first.type === 'result') throw new Error(String(first.error))
    const la = loadavg()[0]
    const c0 = cpuTimes(t.pid, t.withChildren)
    const u0 = cpuSeconds(upstreamPid)
    const r = await child.next('result', options.durationMs + 30_000)
    const seconds = r.seconds as number
    const used = cpuDelta(c0, cpuTimes(t.pid, t.withChildren))
    const upCpu = cpuSeconds(upstreamPid) - u0
    const messages = r.messages as number
    if (messages === 0) throw new Error(`no echo came back (${String(r.lastError ?? 'no error')})`)
    return {
      scenario: 'ws',
      case: kase,
      target: t.target,
      label: t.label,
      value: r.mps as number,
      unit: 'msg/s',
      p50Ms: r.p50Ms as number,
      p99Ms: r.p99Ms as number,
      proxyCpuPct: ((used.user + used.kernel) / seconds) * 100,
      upstreamCpuPct: (upCpu / seconds) * 100,
      ...cpuPerOp(used, messages),
      errors: r.errors as number,
      loadavg: Math.round(la * 100) / 100,
      round
    }
  } finally {
    await child.stop(5_000)
  }
}

export async function runWs (ctx: Context): Promise<ScenarioResult> {
  const result = newScenario('ws', ctx)
  result.options.wsConnections = ctx.opts.wsConnections
  const stack = new Stack()
  try {
    const up = await startUpstream(stack)
    const gw = await startGateway(ctx, stack, 'ws', up.port)
    result.profile = gw.profile
    const targets: Target[] = []
    if (wants(ctx, 'direct')) targets.push({ target: 'direct', label: 'direct to the ws echo upstream', url: `ws://127.0.0.1:${up.port}/echo`, pid: up.child.pid })
    if (wants(ctx, 'nginx')) {
      const nginx = await startNginx(ctx, stack, result, up.port)
      if (nginx !== undefined) targets.push({ target: 'nginx', label: 'nginx proxy_pass (1 worker)', url: `ws://127.0.0.1:${nginx.port}/wsecho/echo`, pid: nginx.pid, withChildren: true })
    }
    if (wants(ctx, 'bare')) {
      const bare = await startBare(stack, up.port)
      targets.push({ target: 'bare', label: 'bare Fastify + @fastify/http-proxy (websocket: true)', url: `ws://127.0.0.1:${bare.port}/wsecho/echo`, pid: bare.child.pid })
    }
    if (wants(ctx, 'node')) {
      const node = await startNodeFloor(stack, up.port)
      targets.push({ target: 'node', label: 'plain Node TCP relay after the upgrade (no frame parsing: the Node floor)', url: `ws://127.0.0.1:${node.port}/wsecho/echo`, pid: node.child.pid })
    }
    if (wants(ctx, 'native')) {
      const native = await startNativeFloor(stack, result, up.port)
      if (native !== undefined) targets.push({ target: 'native', label: 'the same relay in C on Node\'s event loop (bench/native: no JavaScript per read or write)', url: `ws://127.0.0.1:${native.port}/wsecho/echo`, pid: native.child.pid })
    }
    if (wants(ctx, 'gateway')) targets.push({ target: 'gateway', label: 'gateway route, websocket: true', url: `ws://127.0.0.1:${gw.port}/wsecho/echo`, pid: gw.child.pid })

    await measureRounds(ctx, result, WS_SIZES, targets, async (t, size, kase, round) => await measure(ctx, t, size, kase, round, up.child.pid))
  } finally {
    await stack.close()
  }
  return result
}
