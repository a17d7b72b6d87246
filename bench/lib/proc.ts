import { spawn, execFileSync, type ChildProcess, type StdioOptions } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { Duplex } from 'node:stream'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Message } from './ipc.js'
import { CHANNEL_ENV, readJsonLines, writeJsonLine } from './json-lines.js'

/**
 * Processes without the bench's message pipe (nginx, wrk) do not notice when the runner dies: they are
 * killed when it exits, also on Ctrl-C.
 */
const exitHooks = new Set<() => void>()

/** Runs `fn` (synchronously) if the runner exits before the returned function is called. */
export function onExit (fn: () => void): () => void {
  exitHooks.add(fn)
  return () => { exitHooks.delete(fn) }
}

/** Kills the process and its children (nginx's workers) if the runner exits first. */
export function killOnExit (pid: number | undefined): () => void {
  if (pid === undefined) return () => {}
  return onExit(() => {
    for (const p of [...childPids(pid), pid]) {
      try { process.kill(p, 'SIGKILL') } catch {}
    }
  })
}

process.on('exit', () => {
  for (const fn of exitHooks) {
    try { fn() } catch {}
  }
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(130))
}

/** dist/bench: where the compiled children live. */
export const BENCH_DIST = join(dirname(fileURLToPath(import.meta.url)), '..')

export interface ChildOptions {
  /** Shown in errors. */
  name: string
  /** JSON options for the child, passed as argv[2]. */
  options?: unknown
  /** Node flags such as --cpu-prof. */
  nodeArgs?: string[]
  /** Raise the open-files limit to this (or to the hard limit, if that is lower) with `ulimit -n` via bash. */
  nofile?: number
  /** A command that runs node, such as valgrind and its flags (not with `nofile`). */
  wrapper?: string[]
}

/**
 * The child's fds: its messages go as JSON lines over the pipe at fd 3 (lib/ipc.ts says why
 * not Node's IPC channel).
 */
const STDIO: StdioOptions = ['ignore', 'inherit', 'inherit', 'pipe']
const CHANNEL_FD = STDIO.length - 1

/** A Node child process of the bench, spoken to over its message pipe (lib/ipc.ts). */
export class Child {
  private readonly inbox: Message[] = []
  private waiters: Array<{ types: string[], resolve: (m: Message) => void, reject: (e: Error) => void }> = []
  private exitError: Error | undefined
  private readonly channel: Duplex
  readonly exited: Promise<number | null>

  private constructor (readonly name: string, readonly proc: ChildProcess) {
    this.channel = proc.stdio[CHANNEL_FD] as Duplex
    // A write to a child that has just exited fails with EPIPE; its exit is reported below.
    this.channel.on('error', () => {})
    readJsonLines<Message>(this.channel, name, message => { this.receive(message) })
    this.exited = new Promise(resolve => {
      proc.on('exit', (code, signal) => {
        this.exitError = new Error(`${name} exited (${signal ?? `code ${code}`})`)
        for (const w of this.waiters.splice(0)) w.reject(this.exitError)
        resolve(code)
      })
    })
  }

  private receive (message: Message): void {
    const i = this.waiters.findIndex(w => w.types.includes(message.type))
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(message)
    else this.inbox.push(message)
  }

  get pid (): number {
    return this.proc.pid as number
  }

  /** Starts `script` (relative to dist/bench) and waits for its `ready` message. */
  static async start (script: string, opts: ChildOptions, readyTimeoutMs = 30_000): Promise<{ child: Child, ready: Message }> {
    const path = join(BENCH_DIST, script)
    const argv = [...(opts.nodeArgs ?? []), path, JSON.stringify(opts.options ?? {})]
    const env = { ...process.env, [CHANNEL_ENV]: String(CHANNEL_FD) }
    let proc: ChildProcess
    if (opts.nofile !== undefined) {
      // exec keeps the pid: the runner samples /proc/<pid> of node itself.
      const raise = `ulimit -n ${opts.nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`
      proc = spawn('bash', ['-c', raise, process.execPath, ...argv], { stdio: STDIO, env })
    } else if (opts.wrapper !== undefined) {
      proc = spawn(opts.wrapper[0], [...opts.wrapper.slice(1), process.execPath, ...argv], { stdio: STDIO, env })
    } else {
      proc = spawn(process.execPath, argv, { stdio: STDIO, env })
    }
    const child = new Child(opts.name, proc)
    try {
      return { child, ready: await child.next('ready', readyTimeoutMs) }
    } catch (err) {
      // A child that never got ready is not left running until the runner exits.
      proc.kill('SIGKILL')
      throw err
    }
  }

  /** The next message of this type (already received or to come). */
  async next (type: string, timeoutMs = 60_000): Promise<Message> {
    return await this.nextOf([type], timeoutMs)
  }

  /** The next message of any of these types. */
  async nextOf (types: string[], timeoutMs = 60_000): Promise<Message> {
    const i = this.inbox.findIndex(m => types.includes(m.type))
    if (i >= 0) return this.inbox.splice(i, 1)[0]
    if (this.exitError !== undefined) throw this.exitError
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter(w => w !== waiter)
        reject(new Error(`${this.name}: no ${types.join('/')} message within ${Math.round(timeoutMs / 1000)} s`))
      }, timeoutMs)
      const waiter = {
        types,
        resolve: (m: Message) => { clearTimeout(timer); resolve(m) },
        reject: (e: Error) => { clearTimeout(timer); reject(e) }
      }
      this.waiters.push(waiter)
    })
  }

  send (message: Message): void {
    writeJsonLine(this.channel, message)
  }

  async request (message: Message, replyType: string, timeoutMs = 30_000): Promise<Message> {
    this.send(message)
    return await this.next(replyType, timeoutMs)
  }

  /** Asks the child to stop, then kills it if it has not exited within `timeoutMs`. */
  async stop (timeoutMs = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return
    this.send({ type: 'stop' })
    const timer = setTimeout(() => { this.proc.kill('SIGKILL') }, timeoutMs)
    await this.exited
    clearTimeout(timer)
  }
}

let clockTicks: number | undefined

/** CPU seconds of a process (and of its direct children, for nginx's workers), in user space and in the kernel. */
export function cpuTimes (pid: number, withChildren = false): { user: number, system: number } {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  let user = 0
  let system = 0
  const pids = [pid, ...(withChildren ? childPids(pid) : [])]
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      user += Number(fields[11]) / clockTicks
      system += Number(fields[12]) / clockTicks
    } catch {}
  }
  return { user, system }
}

/** CPU seconds used between two `cpuTimes` readings: in user space and in the kernel. */
export function cpuDelta (before: { user: number, system: number }, after: { user: number, system: number }): { user: number, kernel: number } {
  return { user: after.user - before.user, kernel: after.system - before.system }
}

/** CPU microseconds per operation of a `cpuDelta`, and its kernel and user-space parts; none when no operation was served. */
export function cpuPerOp (used: { user: number, kernel: number }, ops: number): { cpuUsPerOp?: number, kernelUsPerOp?: number, userUsPerOp?: number } {
  if (ops <= 0) return {}
  return { cpuUsPerOp: ((used.user + used.kernel) * 1e6) / ops, kernelUsPerOp: (used.kernel * 1e6) / ops, userUsPerOp: (used.user * 1e6) / ops }
}

/** User+system CPU seconds of a process (and of its direct children). */
export function cpuSeconds (pid: number, withChildren = false): number {
  const { user, system } = cpuTimes(pid, withChildren)
  return user + system
}

export function childPids (pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(s => s !== '').map(Number)
  } catch {
    return []
  }
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM, ...). */
export function procStatusBytes (pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
  return match === null ? 0 : Number(match[1]) * 1024
}

/** The soft "Max open files" of a running process. */
export function openFilesLimit (pid: number): number {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8')
    const match = /^Max open files\s+(\d+)/m.exec(limits)
    return match === null ? 0 : Number(match[1])
  } catch {
    return 0
  }
}

/** A free TCP port on 127.0.0.1 (for nginx, which cannot report the port it got for 0). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** The path of an executable on PATH (or in the sbin directories, where Debian puts nginx), or undefined. */
export function findExecutable (name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin']
  for (const dir of dirs) {
    if (dir === '') continue
    const path = join(dir, name)
    if (existsSync(path)) return path
  }
  return undefined
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
