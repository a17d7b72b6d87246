import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync, readdirSync } from 'node:fs'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { test, type Test } from 'tap'
import WebSocket, { type WebSocketServer } from 'ws'
import { loadNativeRelay } from '../../bench/lib/native.js'
import { Child } from '../../bench/lib/proc.js'
import { startWsUpstream, waitFor } from '../helper.js'

/**
 * The bench's `native` row: the Node floor relaying upgraded sockets with the C addon of
 * bench/native (built here with node-gyp when its sources changed). Real `ws` server behind
 * it, real client in front.
 */
async function nativeFloor (t: Test): Promise<{ proxy: Child, port: number, server: WebSocketServer }> {
  const { path } = await loadNativeRelay()
  const { wss: server, url: upstream } = await startWsUpstream(t)
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

function fdOf (socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd
}

test('the native relay carries messages both ways, small and many times its 64 KiB buffer', async (t) => {
  const { port } = await nativeFloor(t)
  const socket = await open(port)
  t.teardown(() => { socket.terminate() })

  t.same(await echo(socket, Buffer.alloc(64, 7)), Buffer.alloc(64, 7), '64 B')
  t.equal(await echo(socket, 'text frames too'), 'text frames too')
  const big = Buffer.alloc(4 * 1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = i % 251
  t.ok((await echo(socket, big) as Buffer).equals(big), '4 MiB, 64 times the buffer')

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

  await waitFor(() => openFiles(proxy.pid) <= before, 'the relay\'s descriptors to close', 5_000)
  t.pass('the descriptors (Node\'s and the relay\'s copies) are all closed')
})

test('a client that stops reading holds the upstream back through the relay', async (t) => {
  const { port, server } = await nativeFloor(t)
  const socket = await open(port)
  t.teardown(() => { socket.terminate() })
  const [upstreamSide] = [...server.clients]
  socket.pause()
  const big = Buffer.alloc(32 * 1024 * 1024, 5)
  socket.send(big)
  // The echo leaves the upstream only as fast as the relay can write it to the paused client.
  await waitFor(() => upstreamSide.bufferedAmount > 0, 'the upstream to be held back', 10_000)
  await sleep(200)
  t.ok(upstreamSide.bufferedAmount > 0, 'the upstream still has most of the echo to send')
  const answer = once(socket, 'message')
  socket.resume()
  const [message] = await answer as [Buffer]
  t.ok(message.equals(big), 'once the client reads again, all of it arrives')
})

test('start() refuses what it cannot poll and leaves no descriptor behind', async (t) => {
  const { relay } = await loadNativeRelay()
  const server = createServer(s => { s.on('error', () => {}) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(socket, 'connect')
  t.teardown(() => { socket.destroy() })
  const file = openSync(new URL(import.meta.url), 'r')
  t.teardown(() => { closeSync(file) })
  const before = openFiles(process.pid)
  t.throws(() => { relay.start(fdOf(socket), file, () => {}) }, /cannot poll/, 'a regular file second')
  t.throws(() => { relay.start(file, fdOf(socket), () => {}) }, /cannot poll/, 'a regular file first')
  t.throws(() => { relay.start(fdOf(socket), 1_000_000, () => {}) }, /cannot poll/, 'a descriptor that is not open')
  await sleep(50) // libuv closes a handle on the next loop turn
  t.equal(openFiles(process.pid), before, 'every copy was closed')
})

test('an exception thrown by onEnd is an uncaught exception of the process, not a later call\'s error', async (t) => {
  const { path } = await loadNativeRelay()
  // A child process: the exception must reach its uncaughtException handler.
  const script = `
    const net = require('node:net')
    const relay = require(${JSON.stringify(path)})
    process.on('uncaughtException', (err) => { console.log('uncaught: ' + err.message); process.exit(0) })
    const sink = net.createServer((s) => { s.on('error', () => {}) })
    let outer
    sink.listen(0, '127.0.0.1', () => {
      const server = net.createServer((inner) => {
        inner.pause()
        inner._handle.readStop()
        const other = net.connect(sink.address().port, '127.0.0.1')
        other.pause()
        other.on('connect', () => {
          other._handle.readStop()
          relay.start(inner._handle.fd, other._handle.fd, () => { throw new Error('boom from onEnd') })
          outer.end() // the relay reads the end and calls onEnd
        })
      })
      server.listen(0, '127.0.0.1', () => { outer = net.connect(server.address().port, '127.0.0.1') })
    })
    setTimeout(() => { console.log('no exception'); process.exit(1) }, 5000)
  `
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { timeout: 20_000 })
  t.match(stdout, /uncaught: boom from onEnd/)
})

test('the addon refuses arguments that are not two descriptors and a function', async (t) => {
  const { relay } = await loadNativeRelay()
  t.throws(() => { relay.start('3' as unknown as number, 4, () => {}) }, TypeError)
  t.throws(() => { relay.start(3, 4, undefined as unknown as () => void) }, TypeError)
  t.throws(() => { relay.start(-1, 4, () => {}) }, TypeError)
})
