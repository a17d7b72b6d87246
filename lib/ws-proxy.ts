import WebSocket, { type RawData } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { CloseCode } from './errors.js'

/** Bytes queued on the receiving socket above which the sending side stops reading. */
const HIGH_WATER_MARK = 1024 * 1024

export interface UpstreamOptions {
  headers: Record<string, string>
  protocols: string[]
  timeoutMs: number
  maxPayload: number
}

export class UpstreamConnectError extends Error {
  constructor (message: string, public timedOut: boolean) {
    super(message)
  }
}

/**
 * A WebSocket upstream that is open but not yet linked to a client: reading is paused
 * and anything the upstream already sent is held, so nothing is lost before `link`.
 */
export interface PendingUpstream {
  socket: WebSocket
  held: Array<[RawData, boolean]>
}

/** Opens the upstream before the client is upgraded, so a dead upstream can still get an HTTP 502/504. */
export async function connectUpstream (url: string, opts: UpstreamOptions): Promise<PendingUpstream> {
  const socket = new WebSocket(url, opts.protocols, {
    headers: opts.headers,
    handshakeTimeout: opts.timeoutMs,
    maxPayload: opts.maxPayload,
    perMessageDeflate: false,
    followRedirects: false,
    // The gateway relays text frames; the client side and the endpoints judge their UTF-8.
    skipUTF8Validation: true
  })
  const held: Array<[RawData, boolean]> = []
  return await new Promise((resolve, reject) => {
    const fail = (err: UpstreamConnectError): void => {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.terminate()
      reject(err)
    }
    socket.once('open', () => {
      socket.removeAllListeners()
      socket.pause()
      socket.on('message', (data, isBinary) => { held.push([data, isBinary]) })
      socket.on('error', () => {})
      resolve({ socket, held })
    })
    socket.once('unexpected-response', (_req, res) => {
      res.resume()
      fail(new UpstreamConnectError(`upstream answered ${res.statusCode ?? 'an unexpected response'} to the upgrade`, false))
    })
    socket.once('error', (err: Error) => {
      const timedOut = /timed out/i.test(err.message)
      fail(new UpstreamConnectError(timedOut ? 'upstream WebSocket handshake timed out' : err.message, timedOut))
    })
  })
}

/** Maps a close code received from one side to a code that may be sent to the other. */
export function relayCloseCode (code: number, peerDiedCode: number): number {
  if (code === 1005) return CloseCode.NORMAL
  if (code === 1006) return peerDiedCode
  if (code === 1015) return CloseCode.BAD_GATEWAY
  if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code
  return CloseCode.INTERNAL_ERROR
}

function closeSocket (socket: WebSocket, code: number, reason: string): void {
  if (socket.readyState === WebSocket.OPEN) socket.close(code, reason)
  else if (socket.readyState === WebSocket.CONNECTING) socket.terminate()
}

/** One direction of a link: what it holds while paused and why its sender is not read. */
interface Direction {
  from: WebSocket
  to: WebSocket
  held: Array<[RawData, boolean]>
  heldBytes: number
  /** Waiting for the receiver to flush past the high-water mark. */
  draining: boolean
  limit: number
  delivered?: (bytes: number) => void
}

function messageSize (data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0)
  return data instanceof ArrayBuffer ? data.byteLength : data.length
}

/** The sender is read only while its messages can go somewhere: never dropped, only not read. */
function updateReading (d: Direction): void {
  const stop = d.draining || d.heldBytes > d.limit
  if (stop && !d.from.isPaused) d.from.pause()
  else if (!stop && d.from.isPaused) d.from.resume()
}

function forward (d: Direction, data: RawData, isBinary: boolean): void {
  if (d.to.readyState !== WebSocket.OPEN) return
  d.delivered?.(messageSize(data))
  // Backpressure: stop reading the sender until the receiver has flushed this message.
  if (d.to.bufferedAmount > HIGH_WATER_MARK && !d.draining) {
    d.draining = true
    updateReading(d)
    d.to.send(data, { binary: isBinary }, () => {
      d.draining = false
      updateReading(d)
    })
    return
  }
  d.to.send(data, { binary: isBinary })
}

function flush (d: Direction): void {
  const held = d.held.splice(0)
  d.heldBytes = 0
  for (const [data, isBinary] of held) forward(d, data, isBinary)
  updateReading(d)
}

export interface LinkOptions {
  log: FastifyBaseLogger
  onClose?: () => void
  /** Bytes held per direction while paused; past it that side is no longer read. Default 1 MiB. */
  pauseBufferBytes?: number
  /** Told of every message from the client (`countIn`) and to the client (`countOut`). */
  traffic?: { countIn: (bytes: number) => void, countOut: (bytes: number) => void }
}

/** What the owner of a link can do with it (the connection registry's controls). */
export interface LinkControls {
  /** Forward nothing either way; messages are held in order (pings are still answered). */
  pause: () => void
  /** Deliver what was held, in order, and forward again. */
  resume: () => void
  /** Close the client with `code` and `reason`, and the upstream with 1001. */
  stop: (code: number, reason: string) => void
}

/** Pipes messages both ways until either side closes; close codes are relayed, never 1005/1006. */
export function link (client: WebSocket, pending: PendingUpstream, opts: LinkOptions): LinkControls {
  const upstream = pending.socket
  const limit = opts.pauseBufferBytes ?? HIGH_WATER_MARK
  const up: Direction = { from: client, to: upstream, held: [], heldBytes: 0, draining: false, limit }
  const down: Direction = { from: upstream, to: client, held: [], heldBytes: 0, draining: false, limit, delivered: (bytes) => opts.traffic?.countOut(bytes) }
  let paused = false
  let stopping = false
  upstream.removeAllListeners('message')
  for (const [data, isBinary] of pending.held) forward(down, data, isBinary)
  pending.held.length = 0

  const receive = (d: Direction, data: RawData, isBinary: boolean): void => {
    if (stopping) return
    if (!paused) return forward(d, data, isBinary)
    d.held.push([data, isBinary])
    d.heldBytes += messageSize(data)
    updateReading(d)
  }

  let closed = false
  const finish = (): void => {
    if (closed) return
    closed = true
    opts.onClose?.()
  }

  client.on('message', (data, isBinary) => {
    opts.traffic?.countIn(messageSize(data))
    receive(up, data, isBinary)
  })
  upstream.on('message', (data, isBinary) => { receive(down, data, isBinary) })

  client.on('close', (code, reason) => {
    closeSocket(upstream, relayCloseCode(code, CloseCode.GOING_AWAY), reason.toString())
    finish()
  })
  upstream.on('close', (code, reason) => {
    const text = code === 1006 ? 'upstream connection lost' : reason.toString()
    closeSocket(client, relayCloseCode(code, CloseCode.BAD_GATEWAY), text)
    finish()
  })
  client.on('error', (err) => {
    opts.log.debug({ err }, 'websocket client error')
    closeSocket(upstream, CloseCode.GOING_AWAY, 'client error')
  })
  upstream.on('error', (err) => {
    opts.log.warn({ err }, 'websocket upstream error')
    closeSocket(client, CloseCode.INTERNAL_ERROR, 'upstream error')
  })
  updateReading(down)

  return {
    pause () { paused = true },
    resume () {
      paused = false
      flush(up)
      flush(down)
    },
    stop (code, reason) {
      stopping = true
      // Held data is dropped with the connection; both sides are read again so the close handshake completes.
      for (const d of [up, down]) {
        d.held.length = 0
        d.heldBytes = 0
        updateReading(d)
      }
      closeSocket(client, code, reason)
      closeSocket(upstream, CloseCode.GOING_AWAY, 'connection stopped by the gateway')
    }
  }
}
