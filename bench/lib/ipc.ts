/**
 * The child side of the bench's IPC: every child (servers and load generators) reports
 * `ready`/results to the runner with `process.send` and exits when the runner goes away,
 * so nothing is ever left running after a crash of the runner.
 */

export type Message = { type: string, [key: string]: unknown }

export function send (message: Message): void {
  if (process.send !== undefined) process.send(message)
}

const handlers = new Map<string, (message: Message) => unknown>()

process.on('message', (message: Message) => {
  const handler = handlers.get(message.type)
  if (handler === undefined) return
  Promise.resolve(handler(message)).catch((err: Error) => {
    process.stderr.write(`bench child: ${message.type} failed: ${err.stack ?? err.message}\n`)
    process.exit(1)
  })
})

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
  process.on('disconnect', () => process.exit(0))
  setTimeout(() => {
    process.stderr.write(`bench child ${process.argv[1]}: still running after ${Math.round(maxMs / 1000)} s, exiting\n`)
    process.exit(2)
  }, maxMs).unref()
}

/** The options the runner passed as JSON in argv[2]. */
export function options<T> (): T {
  return JSON.parse(process.argv[2] ?? '{}') as T
}
