import { test } from 'tap'
import { closedPort, session, startGateway, startTcpServer, waitFor, WsClient } from './helpers.js'

test('echo: bytes come back on the same stream, ids echoed in the same form', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream('s-1', 'echo')
  c.write('s-1', 'hello')
  const f = await c.expect('stream_data')
  t.equal(f.stream_id, 's-1')
  t.equal(Buffer.from(f.data, 'base64').toString(), 'hello')

  // The upstream defaults to `echo`; an integer id stays an integer, and "7" is another stream than 7.
  c.openStream(7)
  c.openStream('7')
  c.write(7, 'seven')
  const g = await c.expect('stream_data')
  t.same(g, { type: 'stream_data', stream_id: 7, data: Buffer.from('seven').toString('base64') })
  c.write('7', 'string seven')
  const h = await c.expect('stream_data')
  t.equal(h.stream_id, '7')
  t.equal(gw.app.sessions.stats().streams, 3)
  c.close()
})

test('stream_data keeps the order of many frames', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream(1)
  const parts: Buffer[] = []
  for (let i = 0; i < 200; i++) {
    const part = Buffer.from(`part-${i};`)
    parts.push(part)
    c.write(1, part)
  }
  const expected = Buffer.concat(parts)
  const { bytes } = await c.read(1, expected.length)
  t.same(bytes, expected)
  c.close()
})

test('binary-safe: every byte value goes through', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  c.openStream(0)
  c.write(0, all)
  t.same((await c.read(0, 256)).bytes, all)
  c.close()
})

test('blackhole swallows everything; the default upstream is configurable', async (t) => {
  const gw = await startGateway(t, { default_upstream: 'blackhole' })
  const c = await session(gw)
  c.openStream('bh')
  c.write('bh', 'into the void')
  c.openStream('e', 'echo')
  c.write('e', 'back')
  const f = await c.expect('stream_data')
  t.equal(f.stream_id, 'e', 'only the echo stream answers')
  await c.sync()
  t.same(gw.app.upstreams.stats(), { echo: 1, blackhole: 1, tcp: 0 })
  c.close()
})

test('an unknown default_upstream is refused at start', async (t) => {
  await t.rejects(startGateway(t, { default_upstream: 'nope' }), /default_upstream.*"nope"/)
})

test('stream_close releases the stream; the id can be used again', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream('a')
  await c.sync()
  t.equal(gw.app.sessions.stats().streams, 1)
  c.closeStream('a')
  await c.sync()
  t.equal(gw.app.sessions.stats().streams, 0)
  t.equal(gw.app.upstreams.stats().echo, 0)
  c.openStream('a')
  c.write('a', 'again')
  t.equal(Buffer.from((await c.expect('stream_data')).data, 'base64').toString(), 'again')
  c.close()
})

test('STREAM_EXISTS, UNKNOWN_STREAM and UNKNOWN_UPSTREAM', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream('x')
  c.openStream('x')
  t.match(await c.expect('error'), { code: 'STREAM_EXISTS', stream_id: 'x' })
  c.write('nope', 'data')
  t.match(await c.expect('error'), { code: 'UNKNOWN_STREAM', stream_id: 'nope' })
  c.closeStream(42)
  t.match(await c.expect('error'), { code: 'UNKNOWN_STREAM', stream_id: 42 })
  c.openStream('y', 'outline')
  t.match(await c.expect('error'), { code: 'UNKNOWN_UPSTREAM', stream_id: 'y' })
  await c.sync()
  t.equal(gw.app.sessions.stats().streams, 1, 'refused opens reserve nothing')
  c.close()
})

test('MAX_STREAMS: the limit holds, and a closed stream frees a slot', async (t) => {
  const gw = await startGateway(t, { max_streams: 3 })
  const c = await session(gw)
  for (let i = 0; i < 3; i++) c.openStream(i)
  c.openStream(3)
  const err = await c.expect('error')
  t.match(err, { type: 'error', code: 'MAX_STREAMS', stream_id: 3 })
  t.equal(gw.app.sessions.stats().streams, 3)
  c.closeStream(0)
  c.openStream(3)
  c.write(3, 'fits now')
  t.equal((await c.expect('stream_data')).stream_id, 3)

  // The limit is per session.
  const other = await session(gw)
  for (let i = 0; i < 3; i++) other.openStream(i)
  await other.sync()
  t.equal(gw.app.sessions.stats().streams, 6)
  c.close()
  other.close()
})

test('ping: pong carries the other fields back', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.send({ type: 'ping', id: 12, nested: { a: [1, 'two'] } })
  t.same(await c.expect('pong'), { type: 'pong', id: 12, nested: { a: [1, 'two'] } })
  c.send({ type: 'ping' })
  t.same(await c.expect('pong'), { type: 'pong' })
  c.close()
})

test('a ping too deep to echo is a bad frame, and the connection stays', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.send(`{"type":"ping","deep":${'['.repeat(200_000)}${']'.repeat(200_000)}}`)
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /echoed/ })
  c.send({ type: 'ping', ok: true })
  t.match(await c.expect('pong'), { ok: true })
  c.close()
})

test('tcp: an allowed target is connected and bytes flow both ways', async (t) => {
  const echo = await startTcpServer(t)
  const gw = await startGateway(t, { tcp_allow: [echo.target] })
  const c = await session(gw)
  c.openStream('t', 'tcp', echo.target)
  // Sent at once, before the connection is up: held in order, then written.
  for (let i = 0; i < 20; i++) c.write('t', `line ${i}\n`)
  const expected = Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join('')
  const { bytes } = await c.read('t', expected.length)
  t.equal(bytes.toString(), expected)
  t.equal(echo.accepted, 1)
  t.equal(gw.app.upstreams.stats().tcp, 1)
  c.closeStream('t')
  await waitFor(() => echo.sockets.size === 0 && gw.app.upstreams.stats().tcp === 0, 'the tcp connection to close')
  c.close()
})

test('tcp: the allowlist is matched case-insensitively on host:port', async (t) => {
  const echo = await startTcpServer(t)
  const gw = await startGateway(t, { tcp_allow: [`LocalHost:${echo.port}`] })
  const c = await session(gw)
  c.openStream(1, 'tcp', `localhost:${echo.port}`)
  c.write(1, 'hi')
  t.equal((await c.read(1, 2)).bytes.toString(), 'hi')
  c.close()
})

test('tcp: UPSTREAM_DENIED for targets off the allowlist; nothing is allowed by default', async (t) => {
  const echo = await startTcpServer(t)
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream(1, 'tcp', echo.target)
  t.match(await c.expect('error'), { code: 'UPSTREAM_DENIED', stream_id: 1 })

  const gw2 = await startGateway(t, { tcp_allow: [echo.target] })
  const d = await session(gw2)
  d.openStream(1, 'tcp', `127.0.0.1:${echo.port === 65535 ? 1 : echo.port + 1}`)
  t.match(await d.expect('error'), { code: 'UPSTREAM_DENIED', stream_id: 1 })
  d.openStream(2, 'tcp', `127.0.0.2:${echo.port}`)
  t.match(await d.expect('error'), { code: 'UPSTREAM_DENIED', stream_id: 2 })
  d.openStream(3, 'tcp')
  t.match(await d.expect('error'), { code: 'BAD_FRAME', stream_id: 3, message: /target/ })
  d.openStream(4, 'tcp', 'no-port')
  t.match(await d.expect('error'), { code: 'BAD_FRAME', stream_id: 4 })
  d.openStream(5, 'echo', echo.target)
  t.match(await d.expect('error'), { code: 'BAD_FRAME', stream_id: 5, message: /no target/ })
  await d.sync()
  t.equal(echo.accepted, 0, 'no connection was made')
  t.equal(gw2.app.sessions.stats().streams, 0)
  c.close()
  d.close()
})

test('tcp: a refused connect is UPSTREAM_ERROR then stream_close', async (t) => {
  const port = await closedPort()
  const gw = await startGateway(t, { tcp_allow: [`127.0.0.1:${port}`] })
  const c = await session(gw)
  c.openStream('r', 'tcp', `127.0.0.1:${port}`)
  c.write('r', 'lost')
  t.match(await c.expect('error'), { code: 'UPSTREAM_ERROR', stream_id: 'r', message: /ECONNREFUSED/ })
  t.same(await c.expect('stream_close'), { type: 'stream_close', stream_id: 'r', reason: 'upstream_error' })
  t.equal(gw.app.sessions.stats().streams, 0)
  c.close()
})

test('tcp: the upstream ending sends what it had, then stream_close', async (t) => {
  const server = await startTcpServer(t, (socket) => { socket.end('bye from upstream') })
  const gw = await startGateway(t, { tcp_allow: [server.target] })
  const c = await session(gw)
  c.openStream(9, 'tcp', server.target)
  const { bytes, others } = await c.read(9, 'bye from upstream'.length)
  t.equal(bytes.toString(), 'bye from upstream')
  t.same(others, [])
  t.same(await c.expect('stream_close'), { type: 'stream_close', stream_id: 9, reason: 'upstream_closed' })
  await waitFor(() => gw.app.upstreams.stats().tcp === 0, 'the tcp socket to go')
  t.equal(gw.app.sessions.stats().streams, 0)
  c.close()
})

test('tcp: a reset by the upstream is UPSTREAM_ERROR', async (t) => {
  const server = await startTcpServer(t, (socket) => { socket.once('data', () => socket.resetAndDestroy()) })
  const gw = await startGateway(t, { tcp_allow: [server.target] })
  const c = await session(gw)
  c.openStream(1, 'tcp', server.target)
  c.write(1, 'trigger')
  t.match(await c.expect('error'), { code: 'UPSTREAM_ERROR', stream_id: 1 })
  t.match(await c.expect('stream_close'), { stream_id: 1, reason: 'upstream_error' })
  c.close()
})

test('tcp: stream_close flushes what the client sent before ending', async (t) => {
  let received = ''
  let ended = false
  const server = await startTcpServer(t, (socket) => {
    socket.on('data', (d) => { received += d.toString() })
    socket.on('end', () => { ended = true; socket.end() })
  })
  const gw = await startGateway(t, { tcp_allow: [server.target] })
  const c = await session(gw)
  // Open, write and close at once: the connect is not done when the close arrives.
  c.openStream('q', 'tcp', server.target)
  c.write('q', 'first ')
  c.write('q', 'second')
  c.closeStream('q')
  await waitFor(() => ended, 'the upstream to see the end')
  t.equal(received, 'first second')
  await waitFor(() => gw.app.upstreams.stats().tcp === 0, 'the socket to close')
  c.close()
})

test('STREAM_BUFFER_FULL: over the bound before the upstream is ready, the stream is closed', async (t) => {
  const gw = await startGateway(t, { max_frame_bytes: 4096 })
  // An upstream that never becomes ready, registered like any future kind.
  let destroyed = 0
  gw.app.upstreams.register({
    name: 'never-ready',
    active: 0,
    open: () => ({ write: () => true, end: () => { destroyed++ }, destroy: () => { destroyed++ }, pause: () => {}, resume: () => {} })
  })
  const c = await session(gw)
  c.openStream('p', 'never-ready')
  const chunk = Buffer.alloc(1000, 1)
  for (let i = 0; i < 4; i++) c.write('p', chunk)
  await c.sync()
  t.equal(gw.app.sessions.list()[0].stats().heldBytes, 4000, 'held while not ready')
  c.write('p', chunk)
  t.match(await c.expect('error'), { code: 'STREAM_BUFFER_FULL', stream_id: 'p' })
  t.same(await c.expect('stream_close'), { type: 'stream_close', stream_id: 'p', reason: 'buffer_full' })
  t.equal(destroyed, 1)
  t.equal(gw.app.sessions.stats().streams, 0)
  const metrics = await gw.app.promRegistry.metrics()
  t.match(metrics, /httvps_gateway_stream_buffer_overflows_total 1/)
  c.close()
})

test('a stream of another session is unknown here', async (t) => {
  const gw = await startGateway(t)
  const a = await session(gw)
  const b = await session(gw)
  a.openStream('mine')
  await a.sync()
  b.write('mine', 'x')
  t.match(await b.expect('error'), { code: 'UNKNOWN_STREAM' })
  a.close()
  b.close()
})

test('a JSON frame sent as a binary message is refused: binary messages are binary stream_data only', async (t) => {
  const gw = await startGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  c.send(Buffer.from(JSON.stringify({ type: 'hello' })))
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /unknown binary frame type/ })
  c.close()
})
