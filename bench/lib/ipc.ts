import { Socket } from 'node:net'
import { CHANNEL_ENV, readJsonLines, writeJsonLine } from './json-lines.js'

/**
 * The child side of the bench's messages: every child (servers and load generators) reports
 * `ready`/results to the runner and exits when the runner goes away, so nothing is ever left
 * running after a crash of the runner.
 *
 * The messages are JSON lines on a plain pipe at fd 3, not Node's IPC channel (`process.send`,
 * `stdio: 'ipc'`). A Node 24 process started with an IPC channel calls `process.nextTick`
 * during bootstrap, and the object literal inside `nextTick` then goes megamorphic once the
 * app has started: each of its later calls takes V8's runtime path (about 5,000 instructions
 * more per call). Callgrind counted that as a fifth of the gateway's work per proxied request
 * (about 10 `nextTick`s a request), so a gateway measured with an IPC channel is not the
 * gateway as `npm start` runs it. See BENCHMARKS.md, "What limits it".
 */

export type Message = { type: string, [key: string]: unknown }

/** The pipe from the runner, when this process was started by it. */
const channel = openChannel()

function openChannel (): Socket | undefined {
  // Only the runner's children have it: in any other Node process fd 3 may be libuv's own.
  const fd = process.env[CHANNEL_ENV]
  if (fd === undefined) return undefined
  const socket = new Socket({ fd: Number(fd), readable: true, writable: true })
  // The runner may be gone mid-write; the 'close' below ends the process then.
  socket.on('error', () => {})
  readJsonLines<Message>(socket, dispatch)
  return socket
}

export function send (message: Message): void {
  if (channel !== undefined) writeJsonLine(channel, message)
}

const handlers = new Map<string, (message: Message) => unknown>()

function dispatch (message: Message): void {
  const handler = handlers.get(message.type)
  if (handler === undefined) return
  Promise.resolve(handler(message)).catch((err: Error) => {
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
