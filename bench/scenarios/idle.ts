import { Child, cpuSeconds, openFilesLimit, sleep } from '../lib/proc.js'
import type { Context, IdleStep, MemSample, ScenarioResult } from '../lib/types.js'
import type { IdleOptions } from '../load/idle.js'
import { DEVICE, Stack, newScenario, probeWs, startGateway, startUpstream } from './common.js'
import { stepRss } from '../lib/targets.js'

/** The target's session count; more is tried only when asked for with --sessions. */
export const IDLE_TARGET_SESSIONS = 50_000
/** Connections per source address: one address has ~28k ephemeral ports, and bind() searches them more slowly the more are taken. */
const PER_ADDRESS = 1_000
/** File descriptors a process keeps for itself besides its sockets. */
const FD_MARGIN = 512
/**
 * Sessions are opened in at least this many steps (if there are as many sessions), memory measured
 * after each, to show whether a session costs more as the count grows (the target's 50,000 may be
 * out of reach of the box).
 */
const MIN_STEPS = 4

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

/** One phase of one load process: the command, then its report. */
async function phase (load: Child, command: string, reply: string, timeoutMs: number): Promise<PhaseReport> {
  load.send({ type: command })
  return await load.next(reply, timeoutMs) as unknown as PhaseReport
}

interface Stepped { reports: PhaseReport[], memory: MemSample[], seconds: number, cpu: number }

/** One phase, one load process after the other, with the gateway's memory after each (once it has settled for `settleMs`). */
async function stepped (gateway: Child, loads: Child[], command: string, reply: string, settleMs: number, phaseTimeoutMs: number): Promise<Stepped> {
  const out: Stepped = { reports: [], memory: [], seconds: 0, cpu: 0 }
  for (const load of loads) {
    const cpu = cpuSeconds(gateway.pid)
    const report = await phase(load, command, reply, phaseTimeoutMs + 30_000)
    out.cpu += cpuSeconds(gateway.pid) - cpu
    out.seconds += report.seconds
    out.reports.push(report)
    await sleep(settleMs)
    out.memory.push(await memory(gateway))
  }
  return out
}

/**
 * How many sessions each step opens: `MIN_STEPS` steps (one per session below that), more when
 * one load process cannot hold a step (`perProcess` sockets at most), sizes differing by one at most.
 */
export function stepSizes (cap: number, perProcess: number): number[] {
  const steps = Math.min(cap, Math.max(MIN_STEPS, Math.ceil(cap / perProcess)))
  return Array.from({ length: steps }, (_, i) => Math.floor((cap * (i + 1)) / steps) - Math.floor((cap * i) / steps))
}

/** What step k's sessions added: its connections (upgrade pass) plus its hellos (hello pass), per session. */
export function stepCosts (baseline: MemSample, connected: MemSample[], authed: MemSample[], hellos: Array<{ ok: number }>): IdleStep[] {
  const steps: IdleStep[] = []
  let total = 0
  for (let k = 0; k < hellos.length; k++) {
    const sessions = hellos[k].ok
    total += sessions
    const beforeConnect = k === 0 ? baseline : connected[k - 1]
    const beforeHello = k === 0 ? connected[connected.length - 1] : authed[k - 1]
    const added = (field: 'vmRss' | 'heapUsed'): number => connected[k][field] - beforeConnect[field] + authed[k][field] - beforeHello[field]
    steps.push({
      sessions,
      total,
      rssPerSession: sessions > 0 ? added('vmRss') / sessions : NaN,
      heapPerSession: sessions > 0 ? added('heapUsed') / sessions : NaN
    })
  }
  return steps
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

    // One load process at a time opens its connections or says its hellos, so each has the whole window.
    const startLoad = async (count: number, first: number): Promise<Child> => {
      const addresses = Array.from({ length: Math.max(1, Math.ceil(count / PER_ADDRESS)) }, (_, i) => `127.0.0.${2 + first + i}`)
      const options: IdleOptions = {
        url: wsUrl,
        count,
        addresses,
        perAddress: PER_ADDRESS,
        connectWindow: 256,
        helloWindow: 1000,
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
    await phase(warm, 'upgrade', 'upgraded', phaseTimeoutMs + 30_000)
    await phase(warm, 'hello', 'authed', phaseTimeoutMs + 30_000)
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
    const loads: Child[] = []
    let address = 0
    for (const count of stepSizes(cap, perProcess)) {
      loads.push(await startLoad(count, address))
      address += Math.ceil(count / PER_ADDRESS)
    }
    const processes = loads.length

    const baseline = await memory(gw.child)
    ctx.log(`  idle: ${cap} sessions (${processes} load process${processes > 1 ? 'es' : ''}, ${address} source addresses); baseline RSS ${(baseline.vmRss / 1048576).toFixed(1)} MiB`)

    // All connections first, step by step, then all hellos, so that the connections' own cost
    // (before any hello) stays measurable; the gateway's CPU is counted over the phases only.
    const upgrade = await stepped(gw.child, loads, 'upgrade', 'upgraded', 1_000, phaseTimeoutMs)
    const upgraded = upgrade.reports
    const nUpgraded = upgraded.reduce((n, r) => n + r.ok, 0)
    const upgradesPerSec = nUpgraded / upgrade.seconds
    ctx.log(`    ${nUpgraded} upgraded in ${processes} steps, ${Math.round(upgradesPerSec)}/s, gateway CPU ${((upgrade.cpu * 1e6) / Math.max(1, nUpgraded)).toFixed(0)} µs per upgrade`)
    const connected = upgrade.memory[processes - 1]

    const hello = await stepped(gw.child, loads, 'hello', 'authed', 2_000, phaseTimeoutMs)
    const authed = hello.reports
    const nAuthed = authed.reduce((n, r) => n + r.ok, 0)
    const hellosPerSec = nAuthed / hello.seconds
    ctx.log(`    ${nAuthed} authenticated, ${Math.round(hellosPerSec)} hellos/s, gateway CPU ${((hello.cpu * 1e6) / Math.max(1, nAuthed)).toFixed(0)} µs per hello`)
    const after = hello.memory[processes - 1]
    const steps = stepCosts(baseline, upgrade.memory, hello.memory, authed)
    ctx.log(`    RSS per session by step: ${stepRss(steps)} KiB`)
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
      cpuUsPerUpgrade: nUpgraded > 0 ? (upgrade.cpu * 1e6) / nUpgraded : NaN,
      cpuUsPerHello: nAuthed > 0 ? (hello.cpu * 1e6) / nAuthed : NaN,
      gatewayOpenFiles,
      loadProcesses: processes,
      sourceAddresses: address,
      baseline,
      connected,
      authed: after,
      rssPerSession: nAuthed > 0 ? (after.vmRss - baseline.vmRss) / nAuthed : NaN,
      heapPerSession: nAuthed > 0 ? (after.heapUsed - baseline.heapUsed) / nAuthed : NaN,
      rssPerConnectionBeforeHello: nUpgraded > 0 ? (connected.vmRss - baseline.vmRss) / nUpgraded : NaN,
      steps
    }
    ctx.log(`    RSS ${(after.vmRss / 1048576).toFixed(1)} MiB: ${(result.idle.rssPerSession / 1024).toFixed(2)} KiB/session, heap ${(result.idle.heapPerSession / 1024).toFixed(2)} KiB/session`)
    if (capNote !== undefined) result.notes.push(`Fewer sessions than the target's 50,000: ${capNote}.`)
    if (failed > 0) result.notes.push(`${failed} connections or hellos failed (last error: ${lastError ?? '?'}).`)
    result.notes.push('RSS is VmRSS of the gateway process (/proc/<pid>/status); heap is `process.memoryUsage().heapUsed` after two `gc()` calls, reported by the gateway child over its message pipe to the runner. Per session = (after − baseline) / sessions; the baseline is taken after a 500-session warm-up. The sessions are opened in steps, one load process each: every step\'s connections, then every step\'s hellos, memory measured after each step; a step\'s cost per session is what its connections and its hellos added, divided by its sessions.')

    for (const l of loads) l.send({ type: 'close' })
    await Promise.all(loads.map(async l => await l.next('closed', 30_000).catch(() => {})))
  } finally {
    await stack.close()
  }
  return result
}
