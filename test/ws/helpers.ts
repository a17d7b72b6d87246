import { once } from 'node:events'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type WebSocket from 'ws'
import app, { options } from '../../app.js'
import { loadConfig } from '../../lib/config.js'
import { loggerOptions } from '../../lib/logger.js'
import { TestClient } from '../helper.js'

type Test = { teardown: (fn: () => unknown) => void }

export const DEVICE = { device_id: 'dev-1', token: 'token-of-dev-1-xyz', user_id: 'user-1', subscription_status: 'active' }

export interface Gateway {
  app: FastifyInstance
  url: string
  wsUrl: string
  /** Log lines (JSON) when built with `logs: true`. */
  logs: string[]
}

/**
 * The real gateway on loopback with the embedded demo device unless `devices` or
 * `backend_base_url` is given. `logs: true` captures every log line at trace level.
 */
export async function startGateway (t: Test, overrides: Record<string, unknown> = {}, opts: { logs?: boolean } = {}): Promise<Gateway> {
  const config = loadConfig({
    env: {},
    overrides: { listen_addr: '127.0.0.1:0', log_level: opts.logs === true ? 'trace' : 'silent', devices: [DEVICE], ...overrides }
  })
  const logs: string[] = []
  const logger = opts.logs === true
    ? { ...(loggerOptions(config) as object), stream: { write (line: string) { logs.push(line) } } }
    : false
  const fastify = Fastify({ ...options, logger })
  await fastify.register(fp(app), { config })
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => await fastify.close())
  const port = (fastify.server.address() as AddressInfo).port
  return { app: fastify, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws`, logs }
}

export type Frame = Record<string, any>

/**
 * A binary `stream_data` message as docs/protocol.md lays it out, written here apart from the
 * gateway's code: `[0x01][0x00][id: 8 bytes big-endian]` or `[0x01][0x01][n][id: n bytes UTF-8]`, then the payload.
 */
export function binaryFrame (streamId: number | string, payload: Buffer | string): Buffer {
  let head: Buffer
  if (typeof streamId === 'number') {
    head = Buffer.alloc(10)
    head[0] = 0x01
    head.writeBigUInt64BE(BigInt(streamId), 2)
  } else {
    const id = Buffer.from(streamId)
    head = Buffer.concat([Buffer.from([0x01, 0x01, id.length]), id])
  }
  return Buffer.concat([head, Buffer.from(payload)])
}

/** A binary message from the gateway read back by the layout of docs/protocol.md; undefined if it is not one. */
export function readBinaryFrame (data: Buffer): { streamId: number | string, payload: Buffer } | undefined {
  if (data.length < 2 || data[0] !== 0x01) return undefined
  if (data[1] === 0x00 && data.length >= 10) return { streamId: Number(data.readBigUInt64BE(2)), payload: data.subarray(10) }
  if (data[1] === 0x01 && data.length >= 3 && data.length >= 3 + data[2]) {
    return { streamId: data.toString('utf8', 3, 3 + data[2]), payload: data.subarray(3 + data[2]) }
  }
  return undefined
}

/**
 * A `/ws` client: JSON frames, with a safety timeout so a missing frame fails instead of hanging.
 * A binary `stream_data` message arrives as `{ type: 'stream_data', stream_id, data: <base64>, binary: true }`,
 * anything else binary as `{ type: 'unreadable_binary', length }`.
 */
export class WsClient extends TestClient {
  protected override decode (data: Buffer, isBinary: boolean): string {
    if (!isBinary) return data.toString()
    const frame = readBinaryFrame(data)
    if (frame === undefined) return JSON.stringify({ type: 'unreadable_binary', length: data.length })
    return JSON.stringify({ type: 'stream_data', stream_id: frame.streamId, data: frame.payload.toString('base64'), binary: true })
  }

  static async connect (url: string, opts: WebSocket.ClientOptions = {}): Promise<WsClient> {
    const client = new WsClient(url, opts)
    await client.open()
    return client
  }

  async frame (timeoutMs = 10_000): Promise<Frame> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error('no frame arrived')), timeoutMs)
    })
    try {
      return await Promise.race([this.nextJson(), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The next frame, which must be of `type`. */
  async expect (type: string): Promise<Frame> {
    const f = await this.frame()
    if (f.type !== type) throw new Error(`expected a ${type} frame, got ${JSON.stringify(f).slice(0, 300)}`)
    return f
  }

  async hello (deviceId = DEVICE.device_id, token = DEVICE.token): Promise<Frame> {
    this.send({ type: 'hello', device_id: deviceId, token })
    return await this.expect('auth_result')
  }

  /** A hello with any credentials (`{ api_key }`, `{ access_token }`, ...). */
  async helloWith (credentials: Record<string, string>): Promise<Frame> {
    this.send({ type: 'hello', ...credentials })
    return await this.expect('auth_result')
  }

  openStream (streamId: unknown, upstream?: string, target?: string, binary?: boolean): void {
    this.send({ type: 'stream_open', stream_id: streamId, upstream, target, binary })
  }

  write (streamId: unknown, bytes: Buffer | string): void {
    this.send({ type: 'stream_data', stream_id: streamId, data: Buffer.from(bytes).toString('base64') })
  }

  /** The same as write, as a binary message. */
  writeBinary (streamId: number | string, bytes: Buffer | string): void {
    this.send(binaryFrame(streamId, bytes))
  }

  closeStream (streamId: unknown): void {
    this.send({ type: 'stream_close', stream_id: streamId })
  }

  /** A ping whose pong proves every earlier frame was handled. */
  async sync (): Promise<void> {
    const marker = Math.random().toString(36).slice(2)
    this.send({ type: 'ping', marker })
    for (;;) {
      const f = await this.frame()
      if (f.type === 'pong' && f.marker === marker) return
    }
  }

  /** Reads stream_data of one stream until `n` bytes came; other frames are returned too. */
  async read (streamId: unknown, n: number): Promise<{ bytes: Buffer, others: Frame[] }> {
    const chunks: Buffer[] = []
    const others: Frame[] = []
    let got = 0
    while (got < n) {
      const f = await this.frame()
      if (f.type === 'stream_data' && f.stream_id === streamId) {
        const b = Buffer.from(f.data, 'base64')
        chunks.push(b)
        got += b.length
      } else {
        others.push(f)
      }
    }
    return { bytes: Buffer.concat(chunks), others }
  }
}

/** A client that has said hello with the demo device. */
export async function session (gw: Gateway): Promise<WsClient> {
  const client = await WsClient.connect(gw.wsUrl)
  const auth = await client.hello()
  if (auth.allowed !== true) throw new Error(`hello refused: ${JSON.stringify(auth)}`)
  return client
}

export interface TcpServer {
  server: Server
  port: number
  /** `127.0.0.1:<port>`, as it goes in tcp_allow and stream_open.target. */
  target: string
  sockets: Set<Socket>
  accepted: number
}

/** A real TCP server on loopback; `onSocket` gets every connection (default: echo). */
export async function startTcpServer (t: Test, onSocket?: (socket: Socket) => void): Promise<TcpServer> {
  const sockets = new Set<Socket>()
  const result: Partial<TcpServer> = { sockets, accepted: 0 }
  const server = createServer((socket) => {
    (result as TcpServer).accepted++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    if (onSocket !== undefined) onSocket(socket)
    else socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise(resolve => server.close(resolve))
  })
  const port = (server.address() as AddressInfo).port
  return Object.assign(result, { server, port, target: `127.0.0.1:${port}` }) as TcpServer
}

/** A port nothing listens on (bound, then released). */
export async function closedPort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  await new Promise(resolve => server.close(resolve))
  return port
}

export { waitFor } from '../helper.js'
