import { randomBytes } from 'node:crypto'
import { test } from 'tap'
import { CloseCode } from '../../lib/errors.js'
import type { UpstreamEvents } from '../../lib/upstreams/types.js'
import { binaryFrame, DEVICE, readBinaryFrame, session, startGateway, startTcpServer, waitFor, WsClient, type Frame } from './helpers.js'

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

test('binary stream_data both ways: integer and string ids, every byte value, answered as binary messages', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  // 64 UTF-16 code units at most: 32 emoji (two units each), 64 two- and three-byte characters.
  for (const id of [0, 7, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER, 's-1', '7', 'ü-ñ', '😀'.repeat(32), 'é'.repeat(64), '€'.repeat(64)]) {
    c.openStream(id, 'echo', undefined, true)
    c.writeBinary(id, ALL_BYTES)
    const f = await c.expect('stream_data')
    t.strictSame(f, { type: 'stream_data', stream_id: id, data: ALL_BYTES.toString('base64'), binary: true }, `id ${JSON.stringify(id).slice(0, 20)}`)
  }
  t.equal(gw.app.sessions.stats().streams, 10)
  c.close()
})

test('the two forms mix: JSON in and binary out, binary in and JSON out, order kept on one stream', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream(1, 'echo', undefined, true)
  c.write(1, 'json in')
  t.strictSame(await c.expect('stream_data'), { type: 'stream_data', stream_id: 1, data: Buffer.from('json in').toString('base64'), binary: true })

  c.openStream(2, 'echo')
  c.writeBinary(2, 'binary in')
  const f = await c.expect('stream_data')
  t.strictSame(f, { type: 'stream_data', stream_id: 2, data: Buffer.from('binary in').toString('base64') }, 'a stream opened without binary answers in JSON')

  const parts: Buffer[] = []
  for (let i = 0; i < 200; i++) {
    const part = Buffer.from(`part-${i};`)
    parts.push(part)
    if (i % 2 === 0) c.write(2, part)
    else c.writeBinary(2, part)
  }
  const expected = Buffer.concat(parts)
  t.strictSame((await c.read(2, expected.length)).bytes, expected, 'JSON and binary frames of one stream stay in order')
  c.close()
})

test('binary stream_data through a tcp upstream, and an empty payload does nothing', async (t) => {
  const received: Buffer[] = []
  const tcp = await startTcpServer(t, (socket) => {
    socket.on('data', (chunk) => {
      received.push(chunk)
      socket.write(Buffer.concat([Buffer.from('got:'), chunk]))
    })
  })
  const gw = await startGateway(t, { tcp_allow: [tcp.target] })
  const c = await session(gw)
  c.openStream('db', 'tcp', tcp.target, true)
  c.writeBinary('db', '')
  c.writeBinary('db', ALL_BYTES)
  const { bytes, others } = await c.read('db', 4 + 256)
  t.strictSame(bytes, Buffer.concat([Buffer.from('got:'), ALL_BYTES]))
  t.strictSame(others, [])
  t.strictSame(Buffer.concat(received), ALL_BYTES, 'the upstream got the payload and nothing of the header')
  c.close()
})

test('malformed binary messages: BAD_FRAME with a reason, counted, and the session goes on', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream(1, 'echo', undefined, true)
  const utf8Invalid = Buffer.from([0x01, 0x01, 0x02, 0xc3, 0x28, 0x41])
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /at least 2 header bytes/],
    ['one byte', Buffer.from([0x01]), /at least 2 header bytes/],
    ['a JSON frame sent as binary', Buffer.from('{"type":"ping"}'), /unknown binary frame type 0x7b .*JSON frames go in text messages/],
    ['unknown type', Buffer.from([0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 1]), /unknown binary frame type 0x02/],
    ['unknown id kind', Buffer.from([0x01, 0x05, 0x41]), /unknown stream id kind 0x05/],
    ['integer id cut short', Buffer.from([0x01, 0x00, 0, 0, 0, 1]), /8 bytes/],
    ['integer id 2^53', binaryFrame(2 ** 53, 'x'), /at most 2\^53 - 1/],
    ['integer id 2^64 - 1', Buffer.from([0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /at most 2\^53 - 1/],
    ['string id of length 0', Buffer.from([0x01, 0x01, 0x00, 0x41]), /length byte \(1-255\)/],
    ['string id longer than the message', Buffer.from([0x01, 0x01, 0x09, 0x41]), /length byte \(1-255\)/],
    ['string id not UTF-8', utf8Invalid, /UTF-8/],
    ['string id of 65 characters', binaryFrame('x'.repeat(65), 'x'), /1-64 characters/],
    ['string id of 65 two-byte characters', binaryFrame('é'.repeat(65), 'x'), /1-64 characters/],
    ['string id of 33 emoji (66 UTF-16 code units)', binaryFrame('😀'.repeat(33), 'x'), /1-64 characters \(UTF-16 code units\)/]
  ]
  for (const [, message] of cases) c.send(message)
  for (const [name, , reason] of cases) {
    t.match(await c.expect('error'), { code: 'BAD_FRAME', message: reason }, name)
  }
  const text = await gw.app.promRegistry.metrics()
  t.match(text, new RegExp(`bad_frames_total ${cases.length}\\b`), 'each one counted')

  c.writeBinary(1, 'still here')
  t.match(await c.expect('stream_data'), { stream_id: 1, data: Buffer.from('still here').toString('base64'), binary: true })
  c.close()
})

test('binary stream_data obeys the same rules as JSON: a hello first, an open stream, a boolean binary', async (t) => {
  const gw = await startGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  c.writeBinary(3, 'too early')
  t.match(await c.expect('error'), { code: 'NOT_AUTHENTICATED', stream_id: 3 })
  t.match(await c.hello(), { allowed: true })
  c.writeBinary('nope', 'x')
  t.match(await c.expect('error'), { code: 'UNKNOWN_STREAM', stream_id: 'nope' })
  c.send({ type: 'stream_open', stream_id: 1, binary: 'yes' })
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /binary/, stream_id: 1 })
  c.send({ type: 'stream_open', stream_id: 1, binary: false })
  c.writeBinary(1, 'json back')
  t.strictSame(await c.expect('stream_data'), { type: 'stream_data', stream_id: 1, data: Buffer.from('json back').toString('base64') })
  c.close()
})

test('a paused session holds binary frames both ways and delivers them in order at resume', async (t) => {
  const gw = await startGateway(t)
  // An upstream whose data is already on its way when the session is paused (as a TCP read in
  // the same turn would be): the gateway must hold it, in its binary form.
  const pushers = new Map<string, UpstreamEvents>()
  gw.app.upstreams.register({
    name: 'pusher',
    active: 0,
    open: (request, events) => {
      pushers.set(String(request.streamId), events)
      queueMicrotask(() => events.ready())
      return { write: () => true, end: () => {}, destroy: () => {}, pause: () => {}, resume: () => {} }
    }
  })
  const c = await session(gw)
  c.openStream(1, 'echo', undefined, true)
  c.openStream(2, 'echo')
  c.openStream('p', 'pusher', undefined, true)
  c.openStream('q', 'pusher')
  await c.sync()
  const s = gw.app.sessions.list()[0]
  t.equal(s.pause(), true)
  pushers.get('p')?.data(Buffer.from('pushed while paused'))
  pushers.get('q')?.data(Buffer.from('pushed as JSON'))
  const held = s.stats().heldBytes
  const qFrame = JSON.stringify({ type: 'stream_data', stream_id: 'q', data: Buffer.from('pushed as JSON').toString('base64') })
  t.equal(held, 3 + 1 + 'pushed while paused'.length + qFrame.length, 'the upstream data is held as the frames that will be sent')
  const sent = [binaryFrame(1, 'one '), JSON.stringify({ type: 'stream_data', stream_id: 1, data: Buffer.from('two ').toString('base64') }), binaryFrame(1, 'three'), binaryFrame(2, 'to json')]
  for (const message of sent) c.send(message)
  await waitFor(() => s.stats().heldBytes >= held + sent.reduce((n, m) => n + m.length, 0), 'the client frames to be held')
  c.send({ type: 'ping', after: 'data' })
  t.equal(c.queued, 0, 'nothing was delivered while paused')
  t.equal(s.resume(), true)
  const frames: Frame[] = []
  const echoedBytes = (): number => frames.filter(f => f.type === 'stream_data').reduce((n, f) => n + Buffer.from(f.data, 'base64').length, 0)
  const total = 'pushed while paused'.length + 'pushed as JSON'.length + 'one two three'.length + 'to json'.length
  while (!frames.some(f => f.type === 'pong') || echoedBytes() < total) frames.push(await c.frame())
  t.strictSame(frames.slice(0, 2), [
    { type: 'stream_data', stream_id: 'p', data: Buffer.from('pushed while paused').toString('base64'), binary: true },
    { type: 'stream_data', stream_id: 'q', data: Buffer.from('pushed as JSON').toString('base64') }
  ], 'the held upstream data first, each stream in its own form')
  const one = frames.filter(f => f.stream_id === 1)
  t.ok(one.every(f => f.binary === true), 'stream 1 answers in binary')
  t.equal(one.map(f => Buffer.from(f.data, 'base64').toString()).join(''), 'one two three')
  t.strictSame(frames.find(f => f.stream_id === 2), { type: 'stream_data', stream_id: 2, data: Buffer.from('to json').toString('base64') }, 'stream 2 answers in JSON')
  t.equal(s.stats().heldBytes, 0)
  c.close()
})

test('binary stream_data counts payload bytes, keeps the buffer bound before ready and the message size limit', async (t) => {
  const gw = await startGateway(t, { max_frame_bytes: 4096 })
  gw.app.upstreams.register({
    name: 'never-ready',
    active: 0,
    open: () => ({ write: () => true, end: () => {}, destroy: () => {}, pause: () => {}, resume: () => {} })
  })
  const c = await session(gw)
  c.openStream(1, 'echo', undefined, true)
  c.writeBinary(1, Buffer.alloc(1000, 7))
  await c.read(1, 1000)
  const metrics = await gw.app.promRegistry.metrics()
  t.match(metrics, /httvps_gateway_bytes_in_total 1000\b/, 'payload bytes in, not the header')
  t.match(metrics, /httvps_gateway_bytes_out_total 1000\b/, 'payload bytes out, not the header')

  // The bound counts payload bytes only: 4 × 1024 fill it exactly, one byte more is over.
  c.openStream('w', 'never-ready', undefined, true)
  for (let i = 0; i < 4; i++) c.writeBinary('w', Buffer.alloc(1024))
  await c.sync()
  t.equal(gw.app.sessions.list()[0].stats().heldBytes, 4096, 'held while not ready, headers not counted')
  c.writeBinary('w', Buffer.alloc(1))
  t.match(await c.expect('error'), { code: 'STREAM_BUFFER_FULL', stream_id: 'w' })
  t.strictSame(await c.expect('stream_close'), { type: 'stream_close', stream_id: 'w', reason: 'buffer_full' })

  // max_frame_bytes bounds the whole message, header included.
  c.writeBinary(1, Buffer.alloc(4096 - 10))
  t.equal((await c.read(1, 4086)).bytes.length, 4086, 'a message of exactly max_frame_bytes goes through')
  c.writeBinary(1, Buffer.alloc(4096 - 9))
  t.equal((await c.closed).code, 1009, 'one byte more closes with 1009')
})

test('binary: true needs an id that has a UTF-8 form', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.send('{"type":"stream_open","stream_id":"\\ud800","binary":true}')
  const f = await c.expect('error')
  t.match(f, { code: 'BAD_FRAME', message: /lone surrogates/, stream_id: '\ud800' })
  t.match(await gw.app.promRegistry.metrics(), /httvps_gateway_bad_frames_total 1\b/, 'counted as a bad frame')
  // A refusal by the frame's handling (here the echo upstream's: no target) is counted like a parse error.
  c.openStream('t', 'echo', '127.0.0.1:1')
  t.match(await c.expect('error'), { code: 'BAD_FRAME', stream_id: 't' })
  t.match(await gw.app.promRegistry.metrics(), /httvps_gateway_bad_frames_total 2\b/, 'every BAD_FRAME counted')
  c.send('{"type":"stream_open","stream_id":"\\ud800"}')
  c.write('\ud800', 'json works')
  t.strictSame(await c.expect('stream_data'), { type: 'stream_data', stream_id: '\ud800', data: Buffer.from('json works').toString('base64') }, 'as a JSON stream it works')
  t.equal(gw.app.sessions.stats().streams, 1)
  c.close()
})

test('binary stream_data written onto the socket: each length form of the frame header, in order with the frames ws sends', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream(1, 'echo', undefined, true) // a 10-byte head
  c.openStream('s', 'echo', undefined, true) // a 4-byte head
  c.openStream('j', 'echo') // answered in JSON text messages, which ws frames
  await c.sync()
  const s = gw.app.sessions.list()[0]
  const inside = s as unknown as { transport: unknown, socket: { _socket: unknown } }
  t.ok(inside.transport !== undefined && inside.transport === inside.socket._socket, 'binary frames go to the very socket ws writes to')
  const before = gw.app.connections.get(s.id)?.info()
  let frameBytes = 0
  // Messages (head and payload) of 125 and 126 bytes (the 7- and 16-bit length forms), 65535 and
  // 65536 (the 16- and 64-bit forms), and about a megabyte (under max_frame_bytes for the way in).
  const cases: Array<[number | string, number]> = [[1, 115], [1, 116], ['s', 121], ['s', 122], [1, 65525], [1, 65526], ['s', 65532], [1, 1_000_000]]
  for (const [id, size] of cases) {
    const payload = randomBytes(size)
    c.writeBinary(id, payload)
    c.write('j', `after ${size}`)
    const f = await c.frame()
    t.ok(f.type === 'stream_data' && f.stream_id === id && f.binary === true && f.data === payload.toString('base64'), `${size} bytes on stream ${id}, whole, as one binary message`)
    const json = { type: 'stream_data', stream_id: 'j', data: Buffer.from(`after ${size}`).toString('base64') }
    t.strictSame(await c.frame(), json, 'then the JSON frame ws sent after it')
    frameBytes += binaryFrame(id, payload).length + JSON.stringify(json).length
  }
  t.equal(s.stats().bytesOut, cases.reduce((n, [, size]) => n + size + `after ${size}`.length, 0), 'payload bytes counted')
  const after = gw.app.connections.get(s.id)?.info()
  t.equal((after?.messages_out ?? 0) - (before?.messages_out ?? 0), 2 * cases.length, 'the registry counts each message once')
  t.equal((after?.bytes_out ?? 0) - (before?.bytes_out ?? 0), frameBytes, 'and its whole size')
  c.close()
})

test('binary frames written onto the socket all arrive, whole, before the close frame of a stop', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream(1, 'echo', undefined, true)
  await c.sync()
  const s = gw.app.sessions.list()[0]
  const payload = randomBytes(64 * 1024)
  for (let i = 0; i < 32; i++) c.writeBinary(1, payload)
  // Stopped while echoes are still on their way out, some of them queued in the socket.
  await waitFor(() => s.stats().bytesOut >= 4 * payload.length, 'echoes going out')
  const sentBeforeStop = s.stats().bytesOut
  gw.app.connections.stop(s.id, CloseCode.POLICY_VIOLATION, 'stopped_by_admin')
  t.equal(s.stats().bytesOut, sentBeforeStop, 'nothing is sent after the stop')
  // ws hands over every message before its close event: once closed, all of them are queued.
  t.same(await c.closed, { code: CloseCode.POLICY_VIOLATION, reason: 'stopped_by_admin' }, 'the close frame, read as one')
  let received = 0
  let whole = 0
  while (c.queued > 0) {
    const f = await c.frame()
    const bytes = Buffer.from(f.data ?? '', 'base64')
    if (f.type === 'stream_data' && bytes.equals(payload)) whole++
    received += bytes.length
  }
  t.equal(whole * payload.length, received, 'only whole echoes came before it')
  t.equal(received, sentBeforeStop, 'every echo sent before the stop')
})

test('without the socket under the WebSocket (injectWS), binary stream_data goes through ws whole', async (t) => {
  const gw = await startGateway(t)
  const ws = await gw.app.injectWS('/ws')
  const messages: Array<{ data: Buffer, isBinary: boolean }> = []
  ws.on('message', (data, isBinary) => { messages.push({ data: data as Buffer, isBinary }) })
  ws.send(JSON.stringify({ type: 'hello', device_id: DEVICE.device_id, token: DEVICE.token }))
  await waitFor(() => messages.length > 0, 'the auth_result')
  t.match(JSON.parse(messages[0].data.toString()), { type: 'auth_result', allowed: true })
  t.equal((gw.app.sessions.list()[0] as unknown as { transport: unknown }).transport, undefined, 'no socket to write to')
  ws.send(JSON.stringify({ type: 'stream_open', stream_id: 1, upstream: 'echo', binary: true }))
  ws.send(binaryFrame(1, ALL_BYTES))
  await waitFor(() => messages.some(m => m.isBinary), 'the echo')
  t.strictSame(readBinaryFrame(messages.find(m => m.isBinary)?.data ?? Buffer.alloc(0)), { streamId: 1, payload: ALL_BYTES })
  ws.terminate()
})

test('after binary streams and their clients leave, nothing of them remains', async (t) => {
  const gw = await startGateway(t)
  const clients = await Promise.all(Array.from({ length: 5 }, async () => await session(gw)))
  for (const [i, c] of clients.entries()) {
    for (let id = 0; id < 4; id++) {
      c.openStream(id, 'echo', undefined, true)
      c.writeBinary(id, Buffer.alloc(4096, i))
    }
  }
  for (const c of clients) await c.read(3, 4096)
  t.equal(gw.app.sessions.stats().streams, 20)
  for (const c of clients) c.close()
  await waitFor(() => gw.app.sessions.stats().connections === 0 && gw.app.sessions.stats().streams === 0, 'every session to go')
  t.strictSame(gw.app.sessions.list(), [])
})
