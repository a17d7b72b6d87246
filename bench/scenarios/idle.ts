import { Child, cpuSeconds, openFilesLimit, sleep } from '../lib/proc.js'
import type { Context, MemSample, ScenarioResult } from '../lib/types.js'
import type { IdleOptions } from '../load/idle.js'
import { DEVICE, Stack, newScenario, probeWs, startGateway, startUpstream } from './common.js'

/** The target's session count; more is tried only when asked for with --sessions. */
export const IDLE_TARGET_SESSIONS = 50_000
/** Connections per source address: one address has ~28k ephemeral ports, and bind() searches them more slowly the more are taken. */
const PER_ADDRESS = 1_000
/** File descriptors a process keeps for itself besides its sockets. */
const FD_MARGIN = 512

async function memory (gateway: Child): Promise<MemSample> {
  const m = await gateway.request({ type: 'mem' }, 'mem', 60_000)
  return {
    vmRss: m.vmRss as number,
    rss: m.rss as number,
    heapUsed: m.heapUsed as number,
    heapTotal: m.heapTotal as number,
    external: m.external as number,
    arrayBuffers: m.arrayBuffers as number
  }
}

interface PhaseReport { ok: number, failed: number, seconds: number, timedOut: boolean, lastError: string }

async function phase (loads: Child[], command: string, reply: string, timeoutMs: number): Promise<PhaseReport[]> {
  for (const l of loads) l.send({ type: command })
  return await Promise.all(loads.map(async l => await l.next(reply, timeoutMs) as unknown as PhaseReport))
}

export async function runIdle (ctx: Context): Promise<ScenarioResult> {
  const result = newScenario('idle', ctx)
  const stack = new Stack()
  const phaseTimeoutMs = 90_000
  try {
    const up = await startUpstream(stack)
    const gw = await startGateway(ctx, stack, 'idle', up.port, { nodeArgs: ['--expose-gc'], nofile: 200_000 })
    const wsUrl = `ws://127.0.0.1:${gw.port}/ws`
    const probe = await probeWs(wsUrl)
    if (!probe.ok) {
      result.available = false
      result.notes.push(`/ws not available: ${probe.detail}.`)
      return result
    }

    const startLoad = async (count: number, first: number, share = 1): Promise<Child> => {
      const addresses = Array.from({ length: Math.max(1, Math.ceil(count / PER_ADDRESS)) }, (_, i) => `127.0.0.${2 + first + i}`)
      const options: IdleOptions = {
        url: wsUrl,
        count,
        addresses,
        perAddress: PER_ADDRESS,
        // The windows are for all load processes together.
        connectWindow: Math.max(8, Math.floor(256 / share)),
        helloWindow: Math.max(8, Math.floor(1000 / share)),
        deviceId: DEVICE.device_id,
        token: DEVICE.token,
        phaseTimeoutMs
      }
      const { child } = await Child.start('load/idle.js', { name: 'idle load', options, nofile: 200_000 })
      stack.push(async () => await child.stop(5_000))
      return child
    }

    // Warm-up: a few hundred sessions opened and closed, so that the baseline has the JIT-compiled code and pools.
    const warm = await startLoad(500, 0)
    await phase([warm], 'upgrade', 'upgraded', phaseTimeoutMs + 30_000)
    await phase([warm], 'hello', 'authed', phaseTimeoutMs + 30_000)
    const loadLimit = openFilesLimit(warm.pid) || 1024
    warm.send({ type: 'close' })
    await warm.next('closed')
    await warm.stop()
    await sleep(1_000)

    const gatewayOpenFiles = openFilesLimit(gw.child.pid)
    const requested = ctx.opts.sessions ?? IDLE_TARGET_SESSIONS
    const cap = Math.max(1, Math.min(requested, gatewayOpenFiles - FD_MARGIN))
    const capNote = cap < requested
      ? `the gateway's open-files limit is ${gatewayOpenFiles} (the hard limit here; \`ulimit -n 200000\` is refused without CAP_SYS_RESOURCE), so ${cap} sessions were tried instead of ${requested}`
      : undefined
    const perProcess = Math.max(1, loadLimit - FD_MARGIN)
    const processes = Math.ceil(cap / perProcess)
    const loads: Child[] = []
    let address = 0
    for (let i = 0; i < processes; i++) {
      const count = Math.min(perProcess, cap - i * perProcess)
      loads.push(await startLoad(count, address, processes))
      address += Math.ceil(count / PER_ADDRESS)
    }

    const baseline = await memory(gw.child)
    ctx.log(`  idle: ${cap} sessions (${processes} load process${processes > 1 ? 'es' : ''}, ${address} source addresses); baseline RSS ${(baseline.vmRss / 1048576).toFixed(1)} MiB`)

    const cpu0 = cpuSeconds(gw.child.pid)
    const upgraded = await phase(loads, 'upgrade', 'upgraded', phaseTimeoutMs + 30_000)
    const upgradeCpu = cpuSeconds(gw.child.pid) - cpu0
    const nUpgraded = upgraded.reduce((n, r) => n + r.ok, 0)
    const upgradesPerSec = nUpgraded / Math.max(...upgraded.map(r => r.seconds))
    ctx.log(`    ${nUpgraded} upgraded, ${Math.round(upgradesPerSec)}/s, gateway CPU ${((upgradeCpu * 1e6) / Math.max(1, nUpgraded)).toFixed(0)} µs per upgrade`)
    await sleep(1_000)
    const connected = await memory(gw.child)

    const t0 = performance.now()
    const cpu1 = cpuSeconds(gw.child.pid)
    const authed = await phase(loads, 'hello', 'authed', phaseTimeoutMs + 30_000)
    const helloSeconds = (performance.now() - t0) / 1000
    const helloCpu = cpuSeconds(gw.child.pid) - cpu1
    const nAuthed = authed.reduce((n, r) => n + r.ok, 0)
    const hellosPerSec = nAuthed / helloSeconds
    ctx.log(`    ${nAuthed} authenticated, ${Math.round(hellosPerSec)} hellos/s, gateway CPU ${((helloCpu * 1e6) / Math.max(1, nAuthed)).toFixed(0)} µs per hello`)
    await sleep(2_000)
    const after = await memory(gw.child)
    const failed = [...upgraded, ...authed].reduce((n, r) => n + r.failed, 0)
    const lastError = [...upgraded, ...authed].map(r => r.lastError).find(e => e !== '')

    result.idle = {
      requested,
      capNote,
      upgraded: nUpgraded,
      authenticated: nAuthed,
      failed,
      lastError,
      upgradesPerSec,
      hellosPerSec,
      cpuUsPerUpgrade: nUpgraded > 0 ? (upgradeCpu * 1e6) / nUpgraded : NaN,
      cpuUsPerHello: nAuthed > 0 ? (helloCpu * 1e6) / nAuthed : NaN,
      gatewayOpenFiles,
      loadProcesses: processes,
      sourceAddresses: address,
      baseline,
      connected,
      authed: after,
      rssPerSession: nAuthed > 0 ? (after.vmRss - baseline.vmRss) / nAuthed : NaN,
      heapPerSession: nAuthed > 0 ? (after.heapUsed - baseline.heapUsed) / nAuthed : NaN,
      rssPerConnectionBeforeHello: nUpgraded > 0 ? (connected.vmRss - baseline.vmRss) / nUpgraded : NaN
    }
    ctx.log(`    RSS ${(after.vmRss / 1048576).toFixed(1)} MiB: ${(result.idle.rssPerSession / 1024).toFixed(2)} KiB/session, heap ${(result.idle.heapPerSession / 1024).toFixed(2)} KiB/session`)
    if (capNote !== undefined) result.notes.push(`Fewer sessions than the target's 50,000: ${capNote}.`)
    if (failed > 0) result.notes.push(`${failed} connections or hellos failed (last error: ${lastError ?? '?'}).`)
    result.notes.push('RSS is VmRSS of the gateway process (/proc/<pid>/status); heap is `process.memoryUsage().heapUsed` after two `gc()` calls, reported by the gateway child over its message pipe to the runner. Per session = (after − baseline) / sessions; the baseline is taken after a 500-session warm-up.')

    for (const l of loads) l.send({ type: 'close' })
    await Promise.all(loads.map(async l => await l.next('closed', 30_000).catch(() => {})))
  } finally {
    await stack.close()
  }
  return result
}
