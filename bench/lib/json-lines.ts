import type { Duplex } from 'node:stream'

/** Set by the runner (lib/proc.ts) in a child's environment: the fd of its message pipe. */
export const CHANNEL_ENV = 'BENCH_CHANNEL_FD'

/** The bench's messages between the runner and a child: one JSON object per line on a pipe. */
export function readJsonLines<T> (stream: Duplex, onMessage: (message: T) => void): void {
  let pending = ''
  stream.setEncoding('utf8')
  stream.on('data', (text: string) => {
    pending += text
    let end: number
    while ((end = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 1)
      if (line !== '') onMessage(JSON.parse(line) as T)
    }
  })
}

export function writeJsonLine (stream: Duplex, message: unknown): void {
  if (stream.writable) stream.write(JSON.stringify(message) + '\n')
}
