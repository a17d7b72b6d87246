import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import WebSocket, { WebSocketServer } from 'ws'
import app, { options } from '../app.js'
import { loadConfig } from '../lib/config.js'

type Test = { teardown: (fn: () => unknown) => void }

/** Builds the real gateway from config overrides (YAML key names), listening on loopback. */
export async function buildGateway (t: Test, overrides: Record<string, unknown> = {}, setup?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const config = loadConfig({ env: {}, overrides: { listen_addr: '127.0.0.1:0', log_level: 'silent', ...overrides } })
  const fastify = Fastify({ ...options, logger: false })
  // fp() so the app's decorators are visible on the instance the test holds.
  await fastify.register(fp(app), { config })
  setup?.(fastify)
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => await fastify.close())
  const port = (fastify.server.address() as AddressInfo).port
  return { app: fastify, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}` }
}

/** A real HTTP upstream on loopback; the handler sees every request. */
export async function startHttpUpstream (t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server, url: string }> {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** A real WebSocket upstream that echoes every message back and records what it saw. */
export async function startWsUpstream (t: Test, onConnection?: (socket: WebSocket, req: IncomingMessage) => void): Promise<{ wss: WebSocketServer, url: string, requests: IncomingMessage[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  const requests: IncomingMessage[] = []
  wss.on('connection', (socket, req) => {
    requests.push(req)
    if (onConnection !== undefined) return onConnection(socket, req)
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
  })
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    await new Promise(resolve => wss.close(resolve))
  })
  return { wss, url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, requests }
}

/** A WebSocket client that collects messages so tests can await them in order. */
export class TestClient {
  readonly socket: WebSocket
  private readonly messages: string[] = []
  private waiters: Array<(m: string) => void> = []
  readonly closed: Promise<{ code: number, reason: string }>

  constructor (url: string, opts: WebSocket.ClientOptions = {}, protocols?: string[]) {
    this.socket = new WebSocket(url, protocols, opts)
    this.socket.on('error', () => {})
    this.socket.on('message', (data, isBinary) => {
      const text = this.decode(data as Buffer, isBinary)
      const waiter = this.waiters.shift()
      if (waiter !== undefined) waiter(text)
      else this.messages.push(text)
    })
    this.closed = new Promise(resolve => {
      this.socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
    })
  }

  /** A received message as the text next() gives (its bytes as UTF-8, unless a subclass knows better). */
  protected decode (data: Buffer, _isBinary: boolean): string {
    return data.toString()
  }

  /** Messages received and not yet taken with next(). */
  get queued (): number {
    return this.messages.length
  }

  async open (): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN) return
    await once(this.socket, 'open')
  }

  async next (): Promise<string> {
    const queued = this.messages.shift()
    if (queued !== undefined) return queued
    return await new Promise(resolve => this.waiters.push(resolve))
  }

  async nextJson (): Promise<any> {
    return JSON.parse(await this.next())
  }

  send (data: string | Buffer | object): void {
    this.socket.send(typeof data === 'object' && !Buffer.isBuffer(data) ? JSON.stringify(data) : data)
  }

  close (code?: number): void {
    this.socket.close(code)
  }
}

/** Resolves with the HTTP status a refused WebSocket upgrade got. */
export async function upgradeStatus (url: string, headers: Record<string, string> = {}): Promise<number> {
  const socket = new WebSocket(url, { headers })
  return await new Promise((resolve, reject) => {
    socket.on('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0) })
    socket.on('open', () => { socket.close(); reject(new Error('upgrade was accepted')) })
    socket.on('error', (err) => { if (!/Unexpected server response/.test(err.message)) reject(err) })
  })
}

/** Polls a condition (no timing assertions: only waiting for a state to be reached). */
export async function waitFor (cond: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/**
 * Writes `text` on a bare TCP socket to `base` and resolves with everything answered, once the
 * server has closed the socket; a socket the server leaves open fails after `timeoutMs`.
 */
export async function rawRequest (base: string, text: string, timeoutMs = 10_000): Promise<string> {
  const socket = connect(Number(new URL(base).port), '127.0.0.1')
  // A reset ends the exchange like a close; it must not throw.
  socket.on('error', () => {})
  let out = ''
  let closed = false
  socket.on('data', (d: Buffer) => { out += d.toString() })
  socket.on('close', () => { closed = true })
  socket.write(text)
  try {
    await waitFor(() => closed, 'the server to close the socket', timeoutMs)
  } finally {
    socket.destroy()
  }
  return out
}
