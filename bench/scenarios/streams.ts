import { existsSync } from 'node:fs'
import { loadavg } from 'node:os'
import { Child, cpuSeconds } from '../lib/proc.js'
import type { Context, Row, ScenarioResult } from '../lib/types.js'
import type { StreamsOptions } from '../load/streams.js'
import { DEVICE, Stack, newScenario, probeWs, roundOrder, startGateway, startUpstream, wants } from './common.js'

export const STREAM_COUNTS = [1, 16]
/** The row target of each load mode. */
export const TARGETS = { raw: 'raw', gateway: 'gateway', binary: 'gateway-binary' } as const

export async function runStreams (ctx: Context): Promise<ScenarioResult> {
  const result = newScenario('streams', ctx)
  result.options.chunk = ctx.opts.chunk
  result.options.window = ctx.opts.window
  const stack = new Stack()
  try {
    const up = await startUpstream(stack)
    const gw = await startGateway(ctx, stack, 'streams', up.port)
    const wsUrl = `ws://127.0.0.1:${gw.port}/ws`
    const probe = await probeWs(wsUrl)
    if (!probe.ok) {
      result.available = false
      result.notes.push(`/ws not available: ${probe.detail}${existsSync('docs/protocol.md') ? '' : ' (docs/protocol.md not written yet)'}.`)
      return result
    }

    const measure = async (mode: StreamsOptions['mode'], streams: number, round: number): Promise<Row> => {
      const options: StreamsOptions = {
        mode,
        url: mode === 'raw' ? `ws://127.0.0.1:${up.port}/` : wsUrl,
        streams,
        chunk: ctx.opts.chunk,
        window: ctx.opts.window,
        warmupMs: ctx.opts.warmupS * 1000,
        durationMs: ctx.opts.durationS * 1000,
        deviceId: DEVICE.device_id,
        token: DEVICE.token
      }
      const pid = mode === 'raw' ? up.child.pid : gw.child.pid
      const { child } = await Child.start('load/streams.js', { name: 'streams load', options })
      try {
        const first = await child.nextOf(['measuring', 'result'], options.warmupMs + 30_000)
        if (first.type === 'result') throw new Error(String(first.error))
        const la = loadavg()[0]
        const c0 = cpuSeconds(pid)
        // The client shares the machine's cores with the server: its CPU tells whether it may be the limit.
        const l0 = cpuSeconds(child.pid)
        const r = await child.next('result', options.durationMs + 30_000)
        if (r.error !== undefined) throw new Error(String(r.error))
        const seconds = r.seconds as number
        const cpu = cpuSeconds(pid) - c0
        const loadCpu = cpuSeconds(child.pid) - l0
        const kib = (r.bytes as number) / 1024
        const inFlight = `${streams * ctx.opts.window} × ${ctx.opts.chunk / 1024} KiB in flight`
        const echoStreams = `${streams} echo stream${streams > 1 ? 's' : ''}`
        return {
          scenario: 'streams',
          case: `${streams} stream${streams > 1 ? 's' : ''}`,
          target: TARGETS[mode],
          label: {
            gateway: `gateway /ws, ${echoStreams} on one socket, JSON frames (${inFlight})`,
            binary: `gateway /ws, ${echoStreams} on one socket, binary frames (${inFlight})`,
            raw: `raw ws binary echo, one socket (${inFlight})`
          }[mode],
          value: r.bytesPerSec as number,
          unit: 'B/s',
          proxyCpuPct: (cpu / seconds) * 100,
          loadCpuPct: (loadCpu / seconds) * 100,
          cpuUsPerOp: kib > 0 ? (cpu * 1e6) / kib : undefined,
          errors: r.errors as number,
          loadavg: Math.round(la * 100) / 100,
          round
        }
      } finally {
        await child.stop(5_000)
      }
    }

    const modes = (['raw', 'gateway', 'binary'] as const).filter(m => wants(ctx, TARGETS[m]))
    for (let round = 0; round < ctx.opts.rounds; round++) {
      for (const streams of STREAM_COUNTS) {
        for (const mode of roundOrder(modes, round)) {
          ctx.log(`  streams ${streams} ${mode}`)
          try {
            const row = await measure(mode, streams, round)
            result.rows.push(row)
            ctx.log(`    ${(row.value / 1048576).toFixed(1)} MiB/s, CPU ${row.proxyCpuPct?.toFixed(0)}% (client ${row.loadCpuPct?.toFixed(0)}%)${row.errors > 0 ? `, ${row.errors} errors` : ''}`)
          } catch (err) {
            result.notes.push(`${TARGETS[mode]}, ${streams} streams: ${(err as Error).message}`)
          }
        }
      }
    }
    result.notes.push(`Bytes/s are echoed payload bytes received by the client (one direction). Gateway: \`stream_data\` of ${ctx.opts.chunk / 1024} KiB payload through the built-in echo upstream, as JSON frames (base64 in JSON text messages; target \`gateway\`) or as binary messages (a 10-byte header, then the payload; streams opened with \`binary: true\`; target \`gateway-binary\`); raw: binary messages of the same size to a plain \`ws\` echo server, with the same bytes in flight. CPU is the gateway's (or the raw echo server's) per KiB echoed; the load client's CPU is that one client process's, in % of a core, which shares the machine's cores with the server.`)
    result.profile = gw.profile
  } finally {
    await stack.close()
  }
  return result
}
