/**
 * The floor for a Node process: a plain `http` server that forwards `/api/*` through an undici
 * Pool (headers passed as they came, no hooks, no checks) and relays `/wsecho/*` upgrades as
 * raw TCP bytes (no WebSocket parsing at all). No gateway can be cheaper in Node; the bench
 * reports it beside the gateway to show how much of the gap to nginx is Node's own.
 *
 * With `nativeRelay` (the path of bench/native's addon) the upgrades are relayed by C code on
 * this process's own event loop instead, so no JavaScript runs per read or write: the `native`
 * row, which tells how much of the floor is the JavaScript per event.
 */
import { createServer, type IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { Pool } from 'undici'
import * as ipc from '../lib/ipc.js'
import type { NativeRelay } from '../lib/native.js'

ipc.bound(60 * 60_000)
const { upstream, nativeRelay } = ipc.options<{ upstream: string, nativeRelay?: string }>()
const native = nativeRelay === undefined ? undefined : createRequire(import.meta.url)(nativeRelay) as NativeRelay
const target = new URL(upstream)
const pool = new Pool(upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 })

const server = createServer((req, res) => {
  pool.dispatch({ path: (req.url ?? '/').slice('/api'.length) || '/', method: 'GET', headers: { 'x-request-id': '1' } }, {
    onRequestStart () {},
    onResponseStart (_c, status, headers) { res.writeHead(status, headers as Record<string, string>) },
    onResponseData (_c, chunk) { res.write(chunk) },
    onResponseEnd () { res.end() },
    onResponseError () { res.statusCode = 502; res.end() }
  })
})
server.keepAliveTimeout = 72_000

/** The client's request head again, with the path under `/wsecho` stripped, for the upstream. */
function head (req: IncomingMessage): string {
  let text = `GET ${(req.url ?? '/').slice('/wsecho'.length) || '/'} HTTP/1.1\r\n`
  for (let i = 0; i < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
  return text + '\r\n'
}

function pipeBytes (from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause()
      to.once('drain', () => from.resume())
    }
  })
  from.on('close', () => to.destroy())
  from.on('error', () => {})
}

/** Node's handle of a socket: the descriptor, and reading stopped for good. */
function takeOver (socket: Socket): number {
  const handle = (socket as unknown as { _handle: { fd: number, readStop: () => number } })._handle
  handle.readStop()
  return handle.fd
}

function relayNatively (relay: NativeRelay, client: Socket, up: Socket, req: IncomingMessage, rest: Buffer): void {
  // Paused, a socket does not start reading on connect; the C relay reads both from here on.
  client.pause()
  up.pause()
  const clientFd = takeOver(client)
  client.on('error', () => {})
  up.on('error', () => {})
  client.on('close', () => up.destroy())
  up.on('close', () => client.destroy())
  up.on('connect', () => {
    const upFd = takeOver(up)
    up.write(rest.length > 0 ? Buffer.concat([Buffer.from(head(req)), rest]) : head(req))
    // The head is a few hundred bytes on a fresh connection: the kernel takes it at once,
    // so nothing of Node's is still queued when the C relay starts writing to the socket.
    if (up.writableLength > 0) return up.destroy()
    try {
      relay.start(clientFd, upFd, () => { client.destroy(); up.destroy() })
    } catch {
      up.destroy() // and so the client (out of descriptors, say)
    }
  })
}

server.on('upgrade', (req: IncomingMessage, client: Socket, rest: Buffer) => {
  const up = connect(Number(target.port), target.hostname)
  client.setNoDelay(true)
  up.setNoDelay(true)
  if (native !== undefined) return relayNatively(native, client, up, req, rest)
  up.write(head(req))
  if (rest.length > 0) up.write(rest)
  pipeBytes(client, up)
  pipeBytes(up, client)
})

server.listen(0, '127.0.0.1', () => {
  ipc.send({ type: 'ready', port: (server.address() as AddressInfo).port })
})

ipc.on('stop', async () => {
  server.closeAllConnections()
  server.close()
  await pool.close().catch(() => {})
  process.exit(0)
})
