import type { Duplex } from 'node:stream'

/** Set by the runner (lib/proc.ts) in a child's environment: the fd of its message pipe. */
export const CHANNEL_ENV = 'BENCH_CHANNEL_FD'

/**
 * The bench's messages between the runner and a child: one JSON object with a string `type`
 * per line, on the pipe that `stdio: 'pipe'` gives (a Unix socket pair, so both ways work).
 * A line that is not such an object (anything else written to the fd) is reported on
 * stderr with `from` and skipped, so it cannot take the reading process down.
 */
export function readJsonLines<T extends { type: string }> (stream: Duplex, from: string, onMessage: (message: T) => void): void {
  let pending = ''
  stream.setEncoding('utf8')
  stream.on('data', (text: string) => {
    pending += text
    let end: number
    while ((end = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 1)
      if (line === '') continue
      const message = parseMessage(line)
      if (message === undefined) process.stderr.write(`bench: skipped a line from ${from} that is not a message: ${line.slice(0, 120)}\n`)
      else onMessage(message as T)
    }
  })
}

function parseMessage (line: string): { type: string } | undefined {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  const ok = typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
  return ok ? value as { type: string } : undefined
}

export function writeJsonLine (stream: Duplex, message: unknown): void {
  if (stream.writable) stream.write(JSON.stringify(message) + '\n')
}
