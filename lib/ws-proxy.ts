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
    followRedirects: false
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

function forward (from: WebSocket, to: WebSocket, data: RawData, isBinary: boolean): void {
  if (to.readyState !== WebSocket.OPEN) return
  // Backpressure: stop reading the sender until the receiver has flushed this message.
  if (to.bufferedAmount > HIGH_WATER_MARK && !from.isPaused) {
    from.pause()
    to.send(data, { binary: isBinary }, () => { if (from.readyState === WebSocket.OPEN) from.resume() })
    return
  }
  to.send(data, { binary: isBinary })
}

export interface LinkOptions {
  log: FastifyBaseLogger
  onClose?: () => void
}

/** Pipes messages both ways until either side closes; close codes are relayed, never 1005/1006. */
export function link (client: WebSocket, pending: PendingUpstream, opts: LinkOptions): void {
  const upstream = pending.socket
  upstream.removeAllListeners('message')
  for (const [data, isBinary] of pending.held) forward(upstream, client, data, isBinary)
  pending.held.length = 0

  let closed = false
  const finish = (): void => {
    if (closed) return
    closed = true
    opts.onClose?.()
  }

  client.on('message', (data, isBinary) => { forward(client, upstream, data, isBinary) })
  upstream.on('message', (data, isBinary) => { forward(upstream, client, data, isBinary) })

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
  upstream.resume()
}
