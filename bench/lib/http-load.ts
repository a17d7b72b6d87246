import { spawn, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { findExecutable, killOnExit } from './proc.js'

export type LoadGenerator = 'wrk' | 'autocannon'

export interface HttpLoadOptions {
  url: string
  connections: number
  durationS: number
  headers?: Record<string, string>
  /** autocannon only: send this many requests instead of running for `durationS` (for a slow target, up to 10 minutes). */
  amount?: number
}

export interface HttpLoadResult {
  requests: number
  seconds: number
  rps: number
  p50Ms: number
  p99Ms: number
  /** Non-2xx/3xx answers plus socket errors and timeouts. */
  errors: number
  tool: LoadGenerator
}

export function wrkVersion (): string | undefined {
  const bin = findExecutable('wrk')
  if (bin === undefined) return undefined
  const out = spawnSync(bin, ['-v'], { encoding: 'utf8' })
  return /wrk\s+(\S+)/.exec(out.stdout + out.stderr)?.[1] ?? 'wrk'
}

export function autocannonPath (): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('autocannon')), 'autocannon.js')
  } catch {
    return undefined
  }
}

/** Runs a process to its end, killed if it is still running `limitMs` later. */
async function run (cmd: string, args: string[], limitMs: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    proc.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    proc.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    const timer = setTimeout(() => proc.kill('SIGKILL'), limitMs)
    const forget = killOnExit(proc.pid)
    proc.on('error', reject)
    proc.on('close', (code) => { clearTimeout(timer); forget(); resolve({ code, stdout, stderr }) })
  })
}

function toMs (value: string, unit: string): number {
  const n = Number(value)
  if (unit === 'us') return n / 1000
  if (unit === 'ms') return n
  if (unit === 's') return n * 1000
  if (unit === 'm') return n * 60_000
  return NaN
}

/** Parses `wrk --latency` output. */
export function parseWrk (text: string): Omit<HttpLoadResult, 'tool'> {
  const latency = (pct: string): number => {
    const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text)
    return m === null ? NaN : toMs(m[1], m[2])
  }
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text)
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text)
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  if (total === null || rps === null) throw new Error(`cannot read wrk output: ${text.trim().slice(0, 300)}`)
  const errors = Number(non2xx?.[1] ?? 0) + (socket === null ? 0 : socket.slice(1).reduce((n, s) => n + Number(s), 0))
  return {
    requests: Number(total[1]),
    seconds: toMs(total[2], total[3]) / 1000,
    rps: Number(rps[1]),
    p50Ms: latency('50'),
    p99Ms: latency('99'),
    errors
  }
}

export async function httpLoad (tool: LoadGenerator, opts: HttpLoadOptions): Promise<HttpLoadResult> {
  const limitMs = opts.amount !== undefined ? 600_000 : (opts.durationS + 30) * 1000
  const headers = Object.entries(opts.headers ?? {})
  if (tool === 'wrk' && opts.amount !== undefined) throw new Error('wrk cannot send a fixed number of requests: use autocannon')
  if (tool === 'wrk') {
    const bin = findExecutable('wrk') as string
    const args = ['-t1', `-c${opts.connections}`, `-d${opts.durationS}s`, '--latency', '--timeout', '10s']
    for (const [k, v] of headers) args.push('-H', `${k}: ${v}`)
    const out = await run(bin, [...args, opts.url], limitMs)
    if (out.code !== 0) throw new Error(`wrk failed (${out.code}): ${out.stderr.trim() || out.stdout.trim()}`)
    return { ...parseWrk(out.stdout), tool }
  }
  const path = autocannonPath()
  if (path === undefined) throw new Error('autocannon is not installed (npm install -D autocannon)')
  const args = [path, '-c', String(opts.connections), ...(opts.amount !== undefined ? ['-a', String(opts.amount), '-t', '60'] : ['-d', String(opts.durationS), '-t', '10']), '-j']
  for (const [k, v] of headers) args.push('-H', `${k}=${v}`)
  const out = await run(process.execPath, [...args, opts.url], limitMs)
  if (out.code !== 0) throw new Error(`autocannon failed (${out.code}): ${out.stderr.trim()}`)
  const json = JSON.parse(out.stdout) as {
    requests: { total: number }
    duration: number
    latency: { p50: number, p99: number }
    non2xx: number
    errors: number
    timeouts: number
  }
  return {
    requests: json.requests.total,
    seconds: json.duration,
    rps: json.requests.total / json.duration,
    p50Ms: json.latency.p50,
    p99Ms: json.latency.p99,
    errors: json.non2xx + json.errors + json.timeouts,
    tool
  }
}
