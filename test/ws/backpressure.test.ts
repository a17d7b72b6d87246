import { createHash } from 'node:crypto'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { test } from 'tap'
import { session, startGateway, startTcpServer, waitFor } from './helpers.js'

/** The gateway's outbound high-water mark (plugins/sessions.ts) plus one upstream read, base64 and JSON included. */
const OUTBOUND_BOUND = 512 * 1024 + 128 * 1024
/** Gives up if backpressure never comes: far more than every kernel buffer on the way can take. */
const CAP = 256 * 1024 * 1024

function pattern (offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) b[i] = (offset + i) % 251
  return b
}

// Binary frames are written onto the client's socket beside ws (Session#sendBinaryStreamData): the same bounds hold.
for (const binary of [false, true]) {
  test(`a fast TCP source and a client that does not read: the source is backpressured, the gateway holds a bounded amount${binary ? ' (binary frames)' : ''}`, async (t) => {
    let written = 0
    const control = { stopped: false }
    let source: Socket | undefined
    const hash = createHash('sha256')
    const tcp = await startTcpServer(t, (socket) => {
      source = socket
      const pump = (): void => {
        while (!control.stopped && written < CAP) {
          const chunk = pattern(written, 64 * 1024)
          hash.update(chunk)
          written += chunk.length
          if (!socket.write(chunk)) { socket.once('drain', pump); return }
        }
        socket.end()
      }
      pump()
    })
    const gw = await startGateway(t, { tcp_allow: [tcp.target] })
    const c = await session(gw)
    c.socket.pause()
    c.openStream('fast', 'tcp', tcp.target, binary)
    await waitFor(() => gw.app.sessions.list().length === 1 && gw.app.sessions.list()[0].streamCount === 1, 'the stream')
    const s = gw.app.sessions.list()[0]

    // The state where the gateway stopped reading the upstream and the source cannot write.
    await waitFor(() => s.stats().upstreamsPaused && source?.writableNeedDrain === true, 'the source to be backpressured', 30_000)
    t.ok(written < CAP, `the source got stuck after ${written} bytes`)
    const stats = s.stats()
    t.ok(stats.peakBufferedAmount < OUTBOUND_BOUND, `the client socket never held more than ${stats.peakBufferedAmount} bytes`)
    t.ok(stats.bufferedAmount >= 512 * 1024, 'it is full, which is why the upstream is paused')
    t.ok(stats.heldBytes < 64 * 1024, 'nothing else piles up')

    // The source stops; the client reads everything, in order.
    control.stopped = true
    c.socket.resume()
    let received = 0
    const others: unknown[] = []
    const got = createHash('sha256')
    for (;;) {
      const f = await c.frame()
      if (f.type === 'stream_close') {
        t.same(f, { type: 'stream_close', stream_id: 'fast', reason: 'upstream_closed' })
        break
      }
      if (f.type !== 'stream_data') { others.push(f); continue }
      const bytes = Buffer.from(f.data, 'base64')
      got.update(bytes)
      received += bytes.length
    }
    t.same(others, [], 'only stream_data before the close')
    t.equal(received, written)
    t.equal(got.digest('hex'), hash.digest('hex'), 'every byte, in order')
    t.ok(s.stats().peakBufferedAmount < OUTBOUND_BOUND, 'still bounded after the catch-up')
    c.close()
  })
}

test('a client that writes faster than a TCP upstream reads: the gateway stops reading the client', async (t) => {
  let upstream: Socket | undefined
  const tcp = await startTcpServer(t, (socket) => { upstream = socket; socket.pause() })
  const gw = await startGateway(t, { tcp_allow: [tcp.target] })
  const c = await session(gw)
  c.openStream('slow', 'tcp', tcp.target)
  await waitFor(() => upstream !== undefined, 'the upstream connection')
  const s = gw.app.sessions.list()[0]

  // Keep writing until the client's own socket backs up: the gateway is no longer reading it.
  const hash = createHash('sha256')
  let sent = 0
  while (!(s.stats().clientPaused && c.socket.bufferedAmount > 1024 * 1024)) {
    if (sent >= CAP) break
    const chunk = pattern(sent, 48 * 1024)
    hash.update(chunk)
    sent += chunk.length
    c.write('slow', chunk)
    if (c.socket.bufferedAmount > 1024 * 1024) await new Promise(resolve => setImmediate(resolve))
  }
  t.ok(sent < CAP, `the client was backpressured after ${sent} bytes`)
  t.equal(s.stats().clientPaused, true)
  // What the gateway holds for the upstream: the socket's buffer past its high-water mark, plus frames already read.
  t.ok(s.stats().heldBytes < 2 * 1024 * 1024, `the gateway holds ${s.stats().heldBytes} bytes`)

  // The upstream starts reading: everything arrives, in order, and the client is read again.
  const got = createHash('sha256')
  let received = 0
  upstream?.on('data', (d: Buffer) => { got.update(d); received += d.length })
  upstream?.resume()
  await waitFor(() => received === sent, 'all bytes to reach the upstream', 30_000)
  t.equal(got.digest('hex'), hash.digest('hex'))
  await waitFor(() => !s.stats().clientPaused, 'the client to be read again')
  c.close()
  await once(c.socket, 'close')
})

test('echo with a client that writes but does not read: memory stays bounded both ways', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream('e')
  await c.sync()
  c.socket.pause()
  const s = gw.app.sessions.list()[0]
  let sent = 0
  // Until both ways are stuck: the echo is not read (the client is slow) and the client is not read (the echo is full).
  while (!(s.stats().upstreamsPaused && s.stats().clientPaused && c.socket.bufferedAmount > 1024 * 1024)) {
    if (sent >= CAP) break
    c.write('e', pattern(sent, 48 * 1024))
    sent += 48 * 1024
    if (c.socket.bufferedAmount > 1024 * 1024) await new Promise(resolve => setImmediate(resolve))
  }
  t.ok(sent < CAP, `the client was backpressured after ${sent} bytes`)
  const stats = s.stats()
  t.ok(stats.upstreamsPaused, 'the echo is not read while the client is slow')
  t.ok(stats.peakBufferedAmount < OUTBOUND_BOUND, `client socket peak ${stats.peakBufferedAmount}`)
  t.ok(stats.heldBytes < 1024 * 1024, `echo queue and frames held: ${stats.heldBytes}`)

  c.socket.resume()
  const { bytes } = await c.read('e', sent)
  t.equal(bytes.length, sent)
  t.ok(bytes.equals(pattern(0, sent)), 'every byte came back in order')
  c.close()
})
