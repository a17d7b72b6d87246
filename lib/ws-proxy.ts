import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import { acceptKey } from './ws-frames.js'
import { randomString } from './random.js'

/**
 * The two WebSocket handshakes of a proxied route, done by the gateway itself so that it
 * holds both raw sockets afterwards (see lib/ws-relay.ts): `ws` would parse every frame.
 * No extension is offered or accepted on either leg, so frames pass unchanged; the
 * subprotocol is the one the upstream chose among those the client offered.
 */

export interface UpstreamOptions {
  /** Request headers besides the handshake's own (forwarded, identity, request id). */
  headers: OutgoingHttpHeaders
  protocols: string[]
  timeoutMs: number
}

/** An upstream that accepted the upgrade; its socket is paused until the relay starts. */
export interface OpenUpstream {
  socket: Socket
  /** Bytes the upstream sent right after its 101 (already frames). */
  head: Buffer
  protocol: string | undefined
}

export class UpstreamConnectError extends Error {
  constructor (message: string, public timedOut: boolean) {
    super(message)
  }
}

/**
 * Not a closure: a listener made inside connectUpstream would keep its scope, and with it the
 * ClientRequest, its answer, its Agent and its timer, alive for as long as the upstream socket
 * (about 5 KB per proxied WebSocket in heap snapshots).
 */
function ignoreError (): void {}

/** Why an upstream's 101 cannot be used, or `undefined` when it can. */
function refuseAnswer (res: IncomingMessage, key: string, offered: string[]): string | undefined {
  if (res.headers.upgrade?.toLowerCase() !== 'websocket') return 'upstream answered 101 without Upgrade: websocket'
  if (res.headers['sec-websocket-accept'] !== acceptKey(key)) return 'upstream sent a wrong Sec-WebSocket-Accept'
  if (res.headers['sec-websocket-extensions'] !== undefined) return 'upstream accepted an extension that was not offered'
  const protocol = res.headers['sec-websocket-protocol']
  if (protocol !== undefined && !offered.includes(protocol)) return 'upstream chose a subprotocol that was not offered'
  return undefined
}

/** Opens the upstream WebSocket (`url` is http: or https:) before the client is upgraded, so a dead upstream can still get an HTTP 502/504. */
export async function connectUpstream (url: string, opts: UpstreamOptions): Promise<OpenUpstream> {
  const key = randomString(16, 'base64')
  const headers: OutgoingHttpHeaders = {
    ...opts.headers,
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': key
  }
  if (opts.protocols.length > 0) headers['sec-websocket-protocol'] = opts.protocols.join(', ')
  const request = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { headers, agent: false })
  return await new Promise((resolve, reject) => {
    let settled = false
    const fail = (err: UpstreamConnectError): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      request.destroy()
      reject(err)
    }
    const timer = setTimeout(() => { fail(new UpstreamConnectError('upstream WebSocket handshake timed out', true)) }, opts.timeoutMs)
    request.on('error', (err) => { fail(new UpstreamConnectError(err.message, false)) })
    request.on('response', (res) => {
      res.resume()
      fail(new UpstreamConnectError(`upstream answered ${res.statusCode ?? 'an unexpected response'} to the upgrade`, false))
    })
    request.on('upgrade', (res, socket: Socket, head: Buffer) => {
      if (settled) {
        socket.destroy()
        return
      }
      settled = true
      clearTimeout(timer)
      const refused = refuseAnswer(res, key, opts.protocols)
      if (refused !== undefined) {
        socket.destroy()
        reject(new UpstreamConnectError(refused, false))
        return
      }
      socket.pause()
      // Until the relay takes it, an upstream that drops just closes; nothing may throw.
      socket.on('error', ignoreError)
      resolve({ socket, head, protocol: res.headers['sec-websocket-protocol'] })
    })
    request.end()
  })
}

/** Header values the gateway adds to its own answers (request id, rate limit); never line breaks. */
type ExtraHeaders = Record<string, string | number | string[] | undefined>

/** Completes the client's upgrade: the 101 answer, with the upstream's subprotocol and the gateway's own headers. */
export function acceptClient (socket: Socket, key: string, protocol: string | undefined, extra: ExtraHeaders): void {
  let head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n`
  if (protocol !== undefined) head += `Sec-WebSocket-Protocol: ${protocol}\r\n`
  for (const name in extra) {
    const value = extra[name]
    if (value === undefined) continue
    const text = Array.isArray(value) ? value.join(', ') : String(value)
    if (!/[\r\n]/.test(text)) head += `${name}: ${text}\r\n`
  }
  socket.write(head + '\r\n')
}

/** The bytes a client sent after its upgrade request, which @fastify/websocket keeps on the raw request. */
export function upgradeHead (raw: IncomingMessage): Buffer {
  const holder = raw as unknown as Record<symbol, unknown>
  for (const symbol of Object.getOwnPropertySymbols(raw)) {
    if (symbol.description === 'ws-head' && Buffer.isBuffer(holder[symbol])) return holder[symbol]
  }
  return Buffer.alloc(0)
}
