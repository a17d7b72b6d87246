import { test } from 'tap'
import { connect, createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import type WebSocket from 'ws'
import type { Test } from '../auth/support.js'
import { buildGateway, startWsUpstream, TestClient, upgradeStatus, waitFor } from '../helper.js'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** A client frame built by hand (masked unless told otherwise), for what `ws` refuses to send. */
function frame (opcode: number, payload: Buffer, opts: { fin?: boolean, mask?: boolean, rsv?: number } = {}): Buffer {
  const mask = opts.mask ?? true
  const len = payload.length
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8
  const out = Buffer.alloc(2 + ext + (mask ? 4 : 0) + len)
  out[0] = ((opts.fin ?? true) ? 0x80 : 0) | (opts.rsv ?? 0) | opcode
  out[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127)
  if (ext === 2) out.writeUInt16BE(len, 2)
  if (ext === 8) out.writeBigUInt64BE(BigInt(len), 2)
  const at = 2 + ext
  if (!mask) {
    payload.copy(out, at)
    return out
  }
  const key = randomBytes(4)
  key.copy(out, at)
  for (let i = 0; i < len; i++) out[at + 4 + i] = payload[i] ^ key[i & 3]
  return out
}

interface RawClient { socket: Socket, head: string, received: () => Buffer, closed: Promise<void> }

/** A WebSocket client on a bare TCP socket: the handshake by hand, then whatever bytes the test writes. */
async function rawClient (url: string, path: string): Promise<RawClient> {
  const { port } = new URL(url)
  const socket = connect(Number(port), '127.0.0.1')
  const key = randomBytes(16).toString('base64')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`)
  let data = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => { data = Buffer.concat([data, chunk]) })
  const closed = once(socket, 'close').then(() => {})
  socket.on('error', () => {})
  await waitFor(() => data.includes('\r\n\r\n') || socket.destroyed, 'handshake answer')
  const end = data.indexOf('\r\n\r\n') + 4
  const head = data.subarray(0, end).toString()
  if (head.startsWith('HTTP/1.1 101')) {
    const accept = createHash('sha1').update(key + GUID).digest('base64')
    if (!head.includes(`Sec-WebSocket-Accept: ${accept}`)) throw new Error('bad accept')
  }
  return { socket, head, received: () => data.subarray(end), closed }
}

/** The close code in the first close frame of unmasked server bytes, or undefined. */
function closeCodeIn (bytes: Buffer): number | undefined {
  let off = 0
  while (off + 2 <= bytes.length) {
    const opcode = bytes[off] & 0x0f
    let len = bytes[off + 1] & 0x7f
    let at = off + 2
    if (len === 126) { len = bytes.readUInt16BE(at); at += 2 } else if (len === 127) { len = Number(bytes.readBigUInt64BE(at)); at += 8 }
    if (opcode === 0x8) return len >= 2 ? bytes.readUInt16BE(at) : 1005
    off = at + len
  }
  return undefined
}

/**
 * A WebSocket upstream on a bare TCP server: it answers the upgrade with a 101 followed by
 * `first` (bytes in the same write), then hands the socket to `upgraded`. Returns its URL.
 */
async function bareUpstream (t: Test, first: Buffer, upgraded: (socket: Socket) => void): Promise<string> {
  const server = createServer((socket) => {
    socket.once('data', (req: Buffer) => {
      const key = /sec-websocket-key: (\S+)/i.exec(req.toString())?.[1] ?? ''
      const accept = createHash('sha1').update(key + GUID).digest('base64')
      socket.write(Buffer.concat([
        Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`),
        first
      ]))
      upgraded(socket)
    })
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** Once every client has left: no relay and no registry entry remain. */
async function nothingLeft (gw: Awaited<ReturnType<typeof buildGateway>>): Promise<void> {
  await waitFor(() => gw.app.websocketRelays.size === 0 && gw.app.connections.size === 0, 'no relay or connection left')
}

async function relayGateway (t: Test, upstreamUrl: string, overrides: Record<string, unknown> = {}): Promise<Awaited<ReturnType<typeof buildGateway>>> {
  return await buildGateway(t, { routes: [{ prefix: '/r', upstream: upstreamUrl, websocket: true, auth: 'none' }], ...overrides })
}

test('pings and pongs pass end to end while running; fragmented messages arrive whole', async (t) => {
  const sockets: WebSocket[] = []
  const up = await startWsUpstream(t, (socket) => {
    sockets.push(socket)
    socket.on('message', (d, isBinary) => socket.send(d, { binary: isBinary }))
  })
  const gw = await relayGateway(t, up.url)
  const client = new TestClient(`${gw.wsUrl}/r`)
  await client.open()
  await waitFor(() => sockets.length === 1, 'upstream socket')
  const upstreamPing = once(sockets[0], 'ping')
  client.socket.ping(Buffer.from('from-client'))
  t.equal((await upstreamPing)[0].toString(), 'from-client')
  const clientPing = once(client.socket, 'ping')
  sockets[0].ping(Buffer.from('from-upstream'))
  t.equal((await clientPing)[0].toString(), 'from-upstream')

  client.socket.send('frag', { fin: false })
  client.socket.send('ment', { fin: false })
  client.socket.send('ed', { fin: true })
  t.equal(await client.next(), 'fragmented')
  const big = Buffer.alloc(200_000, 7)
  client.socket.send(big)
  const echoed = await new Promise<Buffer>(resolve => client.socket.once('message', (d) => resolve(d as Buffer)))
  t.ok(echoed.equals(big), '200 KB message echoed intact')
  const [connection] = gw.app.connections.list().connections
  t.match(connection, { messages_in: 2, messages_out: 2, bytes_in: 10 + big.length, bytes_out: 10 + big.length })
  client.close()
  await client.closed
  await nothingLeft(gw)
})

test('a frame split across many TCP packets, and frames sent before the 101, are relayed', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await relayGateway(t, up.url)
  const raw = await rawClient(gw.url, '/r')
  t.match(raw.head, /^HTTP\/1\.1 101 /)
  t.match(raw.head, /x-request-id: \S+/i)
  const bytes = frame(0x1, Buffer.from('one byte at a time'))
  for (const byte of bytes) {
    raw.socket.write(Buffer.from([byte]))
    await new Promise(resolve => setImmediate(resolve))
  }
  await waitFor(() => raw.received().includes('one byte at a time'), 'echo of the split frame')
  raw.socket.write(frame(0x8, Buffer.from([0x03, 0xe8])))
  await raw.closed
  t.equal(closeCodeIn(raw.received()), 1000)

  // Bytes in the same packet as the upgrade request (the client did not wait for the 101).
  const early = connect(Number(new URL(gw.url).port), '127.0.0.1')
  let got = Buffer.alloc(0)
  early.on('data', (chunk: Buffer) => { got = Buffer.concat([got, chunk]) })
  early.write(`GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n` + frame(0x1, Buffer.from('eager')).toString('latin1'), 'latin1')
  await waitFor(() => got.includes('eager'), 'early frame echoed')
  early.destroy()
  await nothingLeft(gw)
})

test('what the upstream sends with its 101 is relayed first', async (t) => {
  // A bare TCP upstream: the 101 and a first frame in one write.
  const upstream = await bareUpstream(t, frame(0x1, Buffer.from('hello at once'), { mask: false }), (socket) => {
    socket.on('data', () => {})
  })
  const gw = await relayGateway(t, upstream)
  const client = new TestClient(`${gw.wsUrl}/r`)
  t.equal(await client.next(), 'hello at once')
  client.socket.terminate()
})

test('protocol errors and oversized messages close both sides (1002, 1009); others are not disturbed', async (t) => {
  const closes: number[] = []
  const up = await startWsUpstream(t, (socket) => {
    socket.on('close', (code) => closes.push(code))
    socket.on('message', (d, isBinary) => socket.send(d, { binary: isBinary }))
  })
  const gw = await relayGateway(t, up.url, { max_frame_bytes: 4096 })
  const bystander = new TestClient(`${gw.wsUrl}/r`)
  await bystander.open()

  const cases: Array<[string, Buffer, number]> = [
    ['unmasked client frame', frame(0x1, Buffer.from('x'), { mask: false }), 1002],
    ['reserved bits', frame(0x1, Buffer.from('x'), { rsv: 0x40 }), 1002],
    ['unknown opcode', frame(0x3, Buffer.from('x')), 1002],
    ['continuation without a start', frame(0x0, Buffer.from('x')), 1002],
    ['fragmented ping', frame(0x9, Buffer.from('x'), { fin: false }), 1002],
    ['close with a reserved code', frame(0x8, Buffer.from([0x03, 0xed])), 1002],
    ['one message over max_frame_bytes', frame(0x2, Buffer.alloc(5000)), 1009],
    ['fragments adding up past max_frame_bytes', Buffer.concat([frame(0x2, Buffer.alloc(3000), { fin: false }), frame(0x0, Buffer.alloc(3000))]), 1009]
  ]
  for (const [what, bytes, code] of cases) {
    const before = closes.length
    const raw = await rawClient(gw.url, '/r')
    raw.socket.write(bytes)
    await raw.closed
    t.equal(closeCodeIn(raw.received()), code, `${what}: client told ${code}`)
    await waitFor(() => closes.length === before + 1, `${what}: upstream closed`)
    t.equal(closes[before], code, `${what}: upstream told ${code}`)
  }
  bystander.send('still fine')
  t.equal(await bystander.next(), 'still fine')
  bystander.close()
  await bystander.closed
  await nothingLeft(gw)
})

test('the client handshake is checked before any upstream is dialled', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await relayGateway(t, up.url)
  const good = await rawClient(gw.url, '/r')
  t.match(good.head, /^HTTP\/1\.1 101/, 'a good handshake is accepted')
  good.socket.destroy()
  const send = async (headers: string): Promise<string> => {
    const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
    socket.write(`GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n`)
    let out = ''
    socket.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor(() => out.includes('}'), 'answer')
    socket.destroy()
    return out
  }
  const version = await send(`Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n`)
  t.match(version, /^HTTP\/1\.1 426/)
  t.match(version, /"code":"UPGRADE_REQUIRED"/)
  const key = await send('Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n')
  t.match(key, /^HTTP\/1\.1 400/)
  t.match(key, /"code":"BAD_REQUEST"/)
  t.equal(up.requests.length, 1, 'only the good handshake reached the upstream')
})

test('subprotocols: the upstream chooses among the client\'s; a choice not offered is a 502', async (t) => {
  const up = await startWsUpstream(t)
  up.wss.options.handleProtocols = (protocols: Set<string>) => protocols.has('chat.v2') ? 'chat.v2' : 'other'
  const gw = await relayGateway(t, up.url)
  const client = new TestClient(`${gw.wsUrl}/r`, {}, ['chat.v1', 'chat.v2'])
  await client.open()
  t.equal(client.socket.protocol, 'chat.v2')
  client.close()
  t.equal(await upgradeStatus(`${gw.wsUrl}/r`, { 'sec-websocket-protocol': 'chat.v1' }), 502)
})

test('the gateway pings relayed clients: one that answers stays (its pongs are not relayed), a silent one is dropped', async (t) => {
  let upstreamPongs = 0
  const up = await startWsUpstream(t, (socket) => {
    socket.on('pong', () => { upstreamPongs++ })
    socket.on('message', (d, isBinary) => socket.send(d, { binary: isBinary }))
  })
  const gw = await relayGateway(t, up.url, { ping_interval: '100ms' })
  const good = new TestClient(`${gw.wsUrl}/r`)
  let pings = 0
  good.socket.on('ping', () => { pings++ })
  await good.open()
  const silent = await rawClient(gw.url, '/r')
  await silent.closed
  t.ok(silent.received().length > 0, 'the silent client was pinged before it was dropped')
  await waitFor(() => pings >= 3, 'several pings answered')
  good.send('alive')
  t.equal(await good.next(), 'alive')
  t.equal(upstreamPongs, 0, 'the gateway\'s pongs stay with the gateway')
  good.close()
  await good.closed
  await nothingLeft(gw)
})

test('an upstream that dies in the middle of a frame drops the client (a close frame cannot follow half a frame)', async (t) => {
  const upstream = await bareUpstream(t, Buffer.alloc(0), (socket) => {
    socket.once('data', () => {
      socket.end(frame(0x2, Buffer.alloc(1000), { mask: false }).subarray(0, 500))
    })
  })
  const gw = await relayGateway(t, upstream)
  const client = new TestClient(`${gw.wsUrl}/r`)
  await client.open()
  client.send('go')
  t.equal((await client.closed).code, 1006)
  await nothingLeft(gw)
})

test('a close that comes while paused is delivered after the held frames, on resume', async (t) => {
  const sockets: WebSocket[] = []
  const up = await startWsUpstream(t, (socket) => { sockets.push(socket) })
  const gw = await relayGateway(t, up.url)
  const client = new TestClient(`${gw.wsUrl}/r`)
  await client.open()
  await waitFor(() => sockets.length === 1, 'upstream socket')
  const [connection] = gw.app.connections.list().connections
  gw.app.connections.pause(connection.id)
  sockets[0].send('important')
  sockets[0].close(4005, 'done here')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(client.queued, 0, 'nothing delivered while paused')
  gw.app.connections.resume(connection.id)
  t.equal(await client.next(), 'important')
  t.same(await client.closed, { code: 4005, reason: 'done here' })
  await nothingLeft(gw)
})

test('a client that floods pings while paused and reads nothing does not make the gateway buffer pongs', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await relayGateway(t, up.url)
  const raw = await rawClient(gw.url, '/r')
  await waitFor(() => gw.app.connections.size === 1, 'registered')
  const [connection] = gw.app.connections.list().connections
  gw.app.connections.pause(connection.id)
  raw.socket.pause()
  // 200,000 pings of 125 bytes: their pongs (25 MB) are far more than the kernel's socket buffers hold.
  const ping = frame(0x9, Buffer.alloc(125, 1))
  const flood = Buffer.concat(Array.from({ length: 200_000 }, () => ping))
  raw.socket.write(flood)
  await waitFor(() => raw.socket.writableLength === 0, 'flood sent', 30_000)
  await new Promise(resolve => setTimeout(resolve, 300))
  const [relay] = [...gw.app.websocketRelays] as unknown as Array<{ client: { socket: Socket } }>
  t.ok(relay.client.socket.writableLength < 256 * 1024, `gateway holds ${relay.client.socket.writableLength} bytes for the client`)
  raw.socket.destroy()
  await nothingLeft(gw)
})
