import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type Test } from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { Child } from '../../bench/lib/proc.js'
import type { WsEchoOptions } from '../../bench/load/ws-echo.js'

/**
 * A real `ws` server whose `answer` sees each message with the number received so far, and a
 * ws-echo load in counted mode connected to it (stopped with the test).
 */
async function counted (t: Test, connections: number, size: number, answer: (socket: WebSocket, data: Buffer, received: number) => void): Promise<{ child: Child, received: () => number, server: WebSocketServer }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  let received = 0
  server.on('connection', (socket) => {
    socket.on('message', (data: Buffer) => { answer(socket, data, ++received) })
  })
  const { port } = server.address() as AddressInfo
  const options: WsEchoOptions = { url: `ws://127.0.0.1:${port}/`, connections, size, warmupMs: 0, durationMs: 60_000, counted: true }
  const { child } = await Child.start('load/ws-echo.js', { name: 'ws load', options })
  t.teardown(async () => { await child.stop(5_000) })
  await child.next('connected', 30_000)
  return { child, received: () => received, server }
}

test('the ws-echo load in counted mode echoes exactly the asked number of messages per window, and nothing between windows', async (t) => {
  const { child, received, server } = await counted(t, 10, 64, (socket, data) => { socket.send(data) })
  t.equal(server.clients.size, 10, 'every client connected')
  t.equal(received(), 0, 'nothing is sent before the first window')

  const first = await child.request({ type: 'window', amount: 25 }, 'window-done', 30_000)
  t.equal(received(), 25, 'a window of more echoes than clients')
  t.equal(first.echoed, 25)
  t.equal(first.errors, 0)
  await sleep(100)
  t.equal(received(), 25, 'idle between windows')

  await child.request({ type: 'window', amount: 7 }, 'window-done', 30_000)
  t.equal(received(), 32, 'a window of fewer echoes than clients')

  await child.stop(5_000)
  t.equal(child.proc.exitCode, 0, 'stops when asked')
})

test('a counted window that loses a client ends at once and reports the error, instead of waiting for echoes that cannot come', async (t) => {
  const { child, received } = await counted(t, 4, 16, (socket, data, n) => {
    // The 5th message overall: its client is dropped without an echo.
    if (n === 5) socket.terminate()
    else socket.send(data)
  })
  const done = await child.request({ type: 'window', amount: 1_000 }, 'window-done', 30_000)
  t.ok((done.errors as number) >= 1, 'the lost client is an error')
  t.match(done.lastError, /closed with/)
  t.ok(received() < 1_000, 'the window ended early')
  t.ok((done.echoed as number) < 1_000, 'and says how many echoes came back')

  const next = await child.request({ type: 'window', amount: 10 }, 'window-done', 5_000)
  t.equal(next.echoed, 0, 'a later window is refused at once: it would wait for the lost client forever')
})
