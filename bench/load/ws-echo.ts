/**
 * WebSocket echo load, in its own process: `connections` clients, each sends one message,
 * waits for its echo and sends again (a closed loop). Only round trips that start and end
 * inside the measurement window count; the run is bounded by warmup + duration.
 * With `counted`, the runner asks instead for windows of an exact number of echoes (`window`
 * messages), between which every client is idle: the instructions scenario counts a proxy's
 * work per message under callgrind around each window.
 */
import { performance, createHistogram } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import * as ipc from '../lib/ipc.js'

export interface WsEchoOptions {
  url: string
  connections: number
  size: number
  warmupMs: number
  durationMs: number
  counted?: boolean
}

const opts = ipc.options<WsEchoOptions>()
ipc.bound(opts.warmupMs + opts.durationMs + 60_000)
ipc.send({ type: 'ready' })

const payload = randomBytes(opts.size)
const latency = createHistogram()
let phase: 'ramp' | 'warmup' | 'measure' | 'done' = 'ramp'
let windowStart = 0
let messages = 0
let errors = 0
let lastError = ''
const clients: Array<{ socket: WebSocket, start: () => void }> = []

/** The counted window under way: messages sent and echoed so far, out of `amount`. */
let counting: { amount: number, sent: number, echoed: number, done: () => void } | undefined

/** One echo of a counted window: the client sends again until the window's amount is sent. */
function countedEcho (send: () => void): void {
  if (counting === undefined) return
  counting.echoed++
  if (counting.sent < counting.amount) {
    counting.sent++
    send()
  }
  if (counting.echoed === counting.amount) counting.done()
}

/** Clients closed since connecting: a counted window needs every client, so none is run after one closed. */
let lost = 0

/** Echoes exactly `amount` messages (fewer only when a client closes); returns how many came back. */
async function echoExactly (amount: number): Promise<number> {
  if (lost > 0 || amount <= 0) return 0
  const echoed = await new Promise<number>(resolve => {
    const window = { amount, sent: 0, echoed: 0, done: () => { resolve(window.echoed) } }
    counting = window
    for (const c of clients) {
      if (window.sent === amount) break
      window.sent++
      c.start()
    }
  })
  counting = undefined
  return echoed
}

/** Resolves once connected (true) or failed (false). */
async function connect (): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = new WebSocket(opts.url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, handshakeTimeout: 10_000 })
    let sentAt = 0
    const sendOne = (): void => {
      sentAt = performance.now()
      socket.send(payload, { binary: true })
    }
    socket.on('unexpected-response', (_req, res) => {
      lastError = `upgrade answered ${res.statusCode ?? '?'}`
      res.resume()
      socket.terminate()
    })
    socket.on('error', (err) => { errors++; lastError = err.message; resolve(false) })
    socket.on('close', (code) => {
      if (phase !== 'done') { errors++; lastError = `closed with ${code}` }
      lost++
      // A counted window cannot reach its amount without this client: it ends now, with the error.
      counting?.done()
      resolve(false)
    })
    socket.on('open', () => { clients.push({ socket, start: sendOne }); resolve(true) })
    socket.on('message', (data: Buffer) => {
      const now = performance.now()
      if (data.length !== opts.size) { errors++; lastError = `echo of ${data.length} bytes, sent ${opts.size}` }
      if (opts.counted === true) return countedEcho(sendOne)
      if (phase === 'measure' && sentAt >= windowStart) {
        messages++
        latency.record(Math.max(1, Math.round((now - sentAt) * 1000)))
      }
      if (phase !== 'done') sendOne()
    })
  })
}

async function run (): Promise<void> {
  for (let i = 0; i < opts.connections; i += 25) {
    await Promise.all(Array.from({ length: Math.min(25, opts.connections - i) }, connect))
  }
  if (clients.length < opts.connections) {
    ipc.send({ type: 'result', error: `${opts.connections - clients.length} of ${opts.connections} connections failed (${lastError})` })
    return
  }
  if (opts.counted === true) {
    ipc.on('window', async (message) => {
      const echoed = await echoExactly(message.amount as number)
      ipc.send({ type: 'window-done', echoed, errors, lastError })
    })
    ipc.send({ type: 'connected' })
    await ipc.next('stop')
    phase = 'done'
    return
  }
  // Every client starts its loop once all are connected.
  phase = 'warmup'
  for (const c of clients) c.start()
  await new Promise(resolve => setTimeout(resolve, opts.warmupMs))
  phase = 'measure'
  windowStart = performance.now()
  ipc.send({ type: 'measuring' })
  await new Promise(resolve => setTimeout(resolve, opts.durationMs))
  phase = 'done'
  const seconds = (performance.now() - windowStart) / 1000
  ipc.send({
    type: 'result',
    connections: clients.length,
    messages,
    seconds,
    mps: messages / seconds,
    p50Ms: messages > 0 ? latency.percentile(50) / 1000 : NaN,
    p99Ms: messages > 0 ? latency.percentile(99) / 1000 : NaN,
    errors,
    lastError
  })
}

await run()
for (const c of clients) c.socket.terminate()
setTimeout(() => process.exit(0), 200)
