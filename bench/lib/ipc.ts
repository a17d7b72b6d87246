import { Socket } from 'node:net'
import { CHANNEL_ENV, readJsonLines, writeJsonLine } from './json-lines.js'

/**
 * The child side of the bench's messages: every child (servers and load generators) reports
 * `ready`/results to the runner and exits when the runner goes away, so nothing is ever left
 * running after a crash of the runner.
 *
 * The messages are JSON lines on a pipe at fd 3 (lib/json-lines.ts), not Node's IPC channel
 * (`process.send`, `stdio: 'ipc'`). In the gateway's process on Node 24, started with an IPC
 * channel, the object literal inside `process.nextTick` goes megamorphic during start-up, and
 * each later call takes V8's runtime path (about 5,000 instructions more per call); started
 * without one, it does not (docs/performance.md has how that was found). Callgrind
 * counted it as a fifth of the gateway's work per proxied request (about 10 `nextTick`s a
 * request), so a gateway measured with an IPC channel is not the gateway `npm start` runs.
 */

export type Message = { type: string, [key: string]: unknown }

/** The pipe from the runner, when this process was started by it. */
const channel = openChannel()

function openChannel (): Socket | undefined {
  // Only the runner's children have it: in any other Node process fd 3 may be libuv's own.
  // Removed at once, so a process this one starts does not take it for its own (the fd
  // itself is not inherited), as Node removes NODE_CHANNEL_FD.
  const value = process.env[CHANNEL_ENV]
  delete process.env[CHANNEL_ENV]
  const fd = Number(value)
  if (value === undefined || !Number.isInteger(fd) || fd < 3) return undefined
  const socket = new Socket({ fd, readable: true, writable: true })
  // The runner may be gone mid-write; the 'close' below ends the process then.
  socket.on('error', () => {})
  readJsonLines<Message>(socket, 'the bench runner', dispatch)
  return socket
}

export function send (message: Message): void {
  if (channel !== undefined) writeJsonLine(channel, message)
}

const handlers = new Map<string, (message: Message) => unknown>()

function dispatch (message: Message): void {
  const handler = handlers.get(message.type)
  if (handler === undefined) return
  // Through then(), so that a handler that throws at once is reported like one that rejects.
  Promise.resolve(message).then(handler).catch((err: Error) => {
    process.stderr.write(`bench child: ${message.type} failed: ${err.stack ?? err.message}\n`)
    process.exit(1)
  })
}

export function on (type: string, handler: (message: Message) => unknown): void {
  handlers.set(type, handler)
}

/** The next message of one type. */
export async function next (type: string): Promise<Message> {
  return await new Promise(resolve => {
    on(type, (message) => {
      handlers.delete(type)
      resolve(message)
    })
  })
}

/** Every child stops with the runner, and no child runs longer than `maxMs`. */
export function bound (maxMs: number): void {
  channel?.on('close', () => process.exit(0))
  setTimeout(() => {
    process.stderr.write(`bench child ${process.argv[1]}: still running after ${Math.round(maxMs / 1000)} s, exiting\n`)
    process.exit(2)
  }, maxMs).unref()
}

/** The options the runner passed as JSON in argv[2]. */
export function options<T> (): T {
  return JSON.parse(process.argv[2] ?? '{}') as T
}
