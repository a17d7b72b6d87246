import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { loadNativeRelay } from '../../bench/lib/native.js'
import { Child } from '../../bench/lib/proc.js'

/**
 * The bench's `native` row: the Node floor relaying upgraded sockets with the C addon of
 * bench/native (built here with node-gyp when its sources changed). Real `ws` server behind
 * it, real client in front.
 */
async function nativeFloor (t: Test): Promise<{ proxy: Child, port: number, server: WebSocketServer }> {
  const { path } = await loadNativeRelay()
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  server.on('connection', (socket) => {
    socket.on('message', (data: Buffer, isBinary) => { socket.send(data, { binary: isBinary }) })
  })
  const upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const { child, ready } = await Child.start('servers/node-proxy.js', { name: 'node-proxy', options: { upstream, nativeRelay: path } })
  t.teardown(async () => { await child.stop(5_000) })
  return { proxy: child, port: ready.port as number, server }
}

async function open (port: number): Promise<WebSocket> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/wsecho/echo`, { perMessageDeflate: false })
  await once(socket, 'open')
  return socket
}

async function echo (socket: WebSocket, data: Buffer | string): Promise<Buffer | string> {
  const answer = once(socket, 'message')
  socket.send(data)
  const [message, isBinary] = await answer as [Buffer, boolean]
  return isBinary ? message : message.toString()
}

function openFiles (pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

async function until (check: () => boolean, ms = 5_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (check()) return true
  return check()
}

test('the native relay carries messages both ways, small and many times its 64 KiB buffer', async (t) => {
  const { port } = await nativeFloor(t)
  const socket = await open(port)
  t.teardown(() => { socket.terminate() })

  t.same(await echo(socket, Buffer.alloc(64, 7)), Buffer.alloc(64, 7), '64 B')
  t.equal(await echo(socket, 'text frames too'), 'text frames too')
  const big = Buffer.alloc(4 * 1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = i % 251
  t.ok((await echo(socket, big) as Buffer).equals(big), '4 MiB, with partial writes and backpressure both ways')

  // Many in flight at once, on several sockets: every echo comes back, in order.
  const sockets = await Promise.all(Array.from({ length: 5 }, async () => await open(port)))
  t.teardown(() => { for (const s of sockets) s.terminate() })
  const results = await Promise.all(sockets.map(async (s, n) => {
    const got: string[] = []
    const all = new Promise<void>(resolve => s.on('message', (m: Buffer) => { got.push(m.toString()); if (got.length === 200) resolve() }))
    for (let i = 0; i < 200; i++) s.send(`${n}:${i}`)
    await all
    return got.every((m, i) => m === `${n}:${i}`)
  }))
  t.same(results, [true, true, true, true, true], 'in order on each socket')
})

test('a close handshake passes through, and a side that vanishes ends the other; nothing of either stays open', async (t) => {
  const { proxy, port, server } = await nativeFloor(t)
  const before = openFiles(proxy.pid)

  const socket = await open(port)
  t.equal(await echo(socket, 'hi'), 'hi')
  t.ok(openFiles(proxy.pid) > before, 'the relay holds descriptors while open')
  const upstreamSaw = new Promise<number>(resolve => { for (const c of server.clients) c.once('close', resolve) })
  socket.close(4001, 'bye')
  const [code] = await once(socket, 'close') as [number]
  t.equal(code, 4001, 'the upstream answered the close through the relay')
  t.equal(await upstreamSaw, 4001, 'the upstream got the client\'s close code')

  const second = await open(port)
  t.equal(await echo(second, 'again'), 'again')
  for (const c of server.clients) c.terminate()
  const [lost] = await once(second, 'close') as [number]
  t.equal(lost, 1006, 'the upstream vanished: the client is disconnected')

  t.ok(await until(() => openFiles(proxy.pid) === before), 'the descriptors (Node\'s and the relay\'s copies) are all closed')
})

test('the addon refuses arguments that are not two descriptors and a function', async (t) => {
  const { relay } = await loadNativeRelay()
  t.throws(() => { relay.start('3' as unknown as number, 4, () => {}) }, TypeError)
  t.throws(() => { relay.start(3, 4, undefined as unknown as () => void) }, TypeError)
  t.throws(() => { relay.start(-1, 4, () => {}) }, TypeError)
})
