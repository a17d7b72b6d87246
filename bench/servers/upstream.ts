/**
 * The upstream of every scenario, in its own process: a plain Node `http` server answering
 * `GET /<n>` with n bytes (keep-alive), and a `ws` echo server on the same port.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import * as ipc from '../lib/ipc.js'

ipc.bound(60 * 60_000)

const MAX_BODY = 16 * 1024 * 1024
const bodies = new Map<string, Buffer>()

function body (url: string): Buffer | undefined {
  let cached = bodies.get(url)
  if (cached !== undefined) return cached
  const match = /^\/(\d+)(?:\?.*)?$/.exec(url)
  if (match === null || Number(match[1]) > MAX_BODY) return undefined
  cached = Buffer.alloc(Number(match[1]), 'x')
  if (bodies.size < 64) bodies.set(url, cached)
  return cached
}

const server = createServer((req, res) => {
  const data = req.url !== undefined ? body(req.url) : undefined
  if (data === undefined) {
    res.writeHead(404, { 'content-length': 0 })
    res.end()
    return
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length })
  res.end(data)
})
// Proxies keep their upstream connections for a minute; so does the upstream.
server.keepAliveTimeout = 65_000
server.headersTimeout = 66_000

const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
wss.on('connection', (socket) => {
  socket.on('error', () => {})
  socket.on('message', (data, isBinary) => { socket.send(data, { binary: isBinary }) })
})

server.listen(0, '127.0.0.1', () => {
  ipc.send({ type: 'ready', port: (server.address() as AddressInfo).port })
})

ipc.on('stop', () => {
  for (const client of wss.clients) client.terminate()
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
