import { test } from 'tap'
import { upgradeStatus } from '../helper.js'
import { session, startGateway, startTcpServer, waitFor, WsClient } from './helpers.js'

function timeouts (): number {
  return process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
}

test('after a client disconnects, no session, stream, upstream socket or timer of it remains', async (t) => {
  const tcp = await startTcpServer(t)
  const gw = await startGateway(t, { tcp_allow: [tcp.target] })
  const before = timeouts()

  for (const leave of ['close', 'terminate'] as const) {
    const c = await session(gw)
    c.openStream('t1', 'tcp', tcp.target)
    c.openStream('t2', 'tcp', tcp.target)
    c.openStream('t3', 'tcp', tcp.target)
    c.openStream('e', 'echo')
    c.openStream('b', 'blackhole')
    for (const id of ['t1', 't2', 't3', 'e']) {
      c.write(id, 'ping')
      await c.read(id, 4)
    }
    t.same(gw.app.sessions.stats(), { connections: 1, sessions: 1, streams: 5 })
    t.same(gw.app.upstreams.stats(), { echo: 1, blackhole: 1, tcp: 3 })
    t.equal(tcp.sockets.size, 3)
    t.match(gw.app.connections.list().connections, [{ kind: 'session', route: '/ws', state: 'running', open_streams: 5 }], 'registered')

    if (leave === 'close') c.close()
    else c.socket.terminate()
    await waitFor(() => gw.app.sessions.stats().connections === 0, `the session to go (${leave})`)
    t.same(gw.app.sessions.stats(), { connections: 0, sessions: 0, streams: 0 }, leave)
    t.equal(gw.app.connections.size, 0, `the registry is empty (${leave})`)
    // A destroyed socket reports 'close' a moment later.
    await waitFor(() => gw.app.upstreams.stats().tcp === 0, 'the upstream sockets to close')
    t.same(gw.app.upstreams.stats(), { echo: 0, blackhole: 0, tcp: 0 }, leave)
    await waitFor(() => tcp.sockets.size === 0, 'the tcp server to see its connections close')
  }

  // A connection that never said hello leaves its hello timer behind neither.
  const idle = await WsClient.connect(gw.wsUrl)
  await waitFor(() => gw.app.sessions.stats().connections === 1, 'the connection to register')
  t.match(gw.app.connections.list().connections, [{ kind: 'session', state: 'initial', user_id: null }])
  idle.close()
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'the connection to go')
  t.equal(gw.app.connections.size, 0)
  await waitFor(() => timeouts() <= before, 'timers to be cleared')
  t.ok(timeouts() <= before, 'no timer left')

  const metrics = await gw.app.promRegistry.metrics()
  t.match(metrics, /httvps_gateway_active_sessions 0/)
  t.match(metrics, /httvps_gateway_active_streams 0/)
})

test('a frame over max_frame_bytes closes the socket with 1009', async (t) => {
  const gw = await startGateway(t, { max_frame_bytes: 2048 })
  const before = await WsClient.connect(gw.wsUrl)
  before.send('x'.repeat(3000))
  t.equal((await before.closed).code, 1009)

  const c = await session(gw)
  c.openStream(1)
  c.write(1, Buffer.alloc(1000))
  t.equal((await c.read(1, 1000)).bytes.length, 1000, 'a frame under the bound goes through')
  c.write(1, Buffer.alloc(2000))
  t.equal((await c.closed).code, 1009)
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'the session to go')
  t.same(gw.app.sessions.stats(), { connections: 0, sessions: 0, streams: 0 })
})

test('shutdown: clients get 1001 and every upstream socket is closed', async (t) => {
  const tcp = await startTcpServer(t)
  const gw = await startGateway(t, { tcp_allow: [tcp.target] })
  const c = await session(gw)
  c.openStream(1, 'tcp', tcp.target)
  c.write(1, 'x')
  await c.read(1, 1)
  await gw.app.close()
  t.equal((await c.closed).code, 1001)
  t.same(gw.app.sessions.stats(), { connections: 0, sessions: 0, streams: 0 })
  await waitFor(() => tcp.sockets.size === 0, 'upstream sockets to close')
})

test('Session.close(code, reason) closes one session and its streams', async (t) => {
  const gw = await startGateway(t)
  const a = await session(gw)
  const b = await session(gw)
  a.openStream(1)
  b.openStream(1)
  await a.sync()
  await b.sync()
  const target = gw.app.sessions.list()[0]
  target.close(4000, 'closed by an operator')
  const closedOne = await Promise.race([a.closed, b.closed])
  t.same(closedOne, { code: 4000, reason: 'closed by an operator' })
  t.same(gw.app.sessions.stats(), { connections: 1, sessions: 1, streams: 1 })
  t.equal(target.state, 'closed')
  a.close()
  b.close()
})

test('pause holds both directions in order; resume delivers and forwards again', async (t) => {
  let upstreamSocket: import('node:net').Socket | undefined
  const tcp = await startTcpServer(t, (socket) => { upstreamSocket = socket; socket.on('data', () => {}) })
  const gw = await startGateway(t, { tcp_allow: [tcp.target] })
  const c = await session(gw)
  c.openStream('e', 'echo')
  c.openStream('t', 'tcp', tcp.target)
  await c.sync()
  await waitFor(() => upstreamSocket !== undefined, 'the tcp upstream to connect')
  const s = gw.app.sessions.list()[0]

  t.equal(s.resume(), false, 'resume needs a paused session')
  t.equal(s.pause(), true)
  t.equal(s.pause(), false, 'already paused')
  t.equal(s.state, 'paused')

  // While paused: upstreams are not read, client frames are held in order.
  t.equal(s.stats().upstreamsPaused, true)
  t.equal(s.stats().clientPaused, false, 'the client is still read, so a close is seen')
  c.write('e', 'one ')
  c.write('e', 'two')
  c.send({ type: 'ping', after: 'data' })
  upstreamSocket?.write('from upstream')
  await waitFor(() => s.stats().heldBytes >= 3 * 20, 'the frames to be held')

  t.equal(s.resume(), true)
  t.equal(s.state, 'running')
  const frames: Array<Record<string, any>> = []
  while (frames.filter(f => f.type === 'stream_data').length < 3 || !frames.some(f => f.type === 'pong')) frames.push(await c.frame())
  const echoed = frames.filter(f => f.stream_id === 'e').map(f => Buffer.from(f.data, 'base64').toString()).join('')
  t.equal(echoed, 'one two', 'held client data went through in order')
  const fromTcp = frames.filter(f => f.stream_id === 't').map(f => Buffer.from(f.data, 'base64').toString()).join('')
  t.equal(fromTcp, 'from upstream')
  t.match(frames.find(f => f.type === 'pong'), { after: 'data' })
  t.same(s.stats().heldBytes, 0)
  t.equal(s.stats().clientPaused, false)
  c.close()
})

test('a paused session can be closed; nothing of it remains', async (t) => {
  const gw = await startGateway(t)
  const c = await session(gw)
  c.openStream(1)
  await c.sync()
  const s = gw.app.sessions.list()[0]
  s.pause()
  c.write(1, 'never echoed')
  c.close()
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'the session to go')
  t.equal(s.state, 'closed')
  t.equal(s.stats().heldBytes, 0)
  t.same(gw.app.upstreams.stats(), { echo: 0, blackhole: 0, tcp: 0 })
})

test('a paused session holds client frames up to its bound, then stops reading the client', async (t) => {
  // The bound is pause_buffer_bytes (both directions together).
  const gw = await startGateway(t, { max_frame_bytes: 4096, pause_buffer_bytes: 2 * 4096 })
  const c = await session(gw)
  c.openStream(1)
  await c.sync()
  const s = gw.app.sessions.list()[0]
  const bound = 2 * 4096
  s.pause()
  const sent: Buffer[] = []
  for (let i = 0; i < 40; i++) {
    const chunk = Buffer.alloc(1000, i)
    sent.push(chunk)
    c.write(1, chunk)
  }
  await waitFor(() => s.stats().clientPaused, 'the client socket to be paused')
  // Frames already read from the socket still arrive after the pause: at most one read (64 KiB) more.
  const limit = bound + 64 * 1024 + 4096
  t.ok(s.stats().heldBytes < limit, `held ${s.stats().heldBytes} bytes, under ${limit}`)
  s.resume()
  const { bytes } = await c.read(1, 40_000)
  t.same(bytes, Buffer.concat(sent), 'everything came through in order, nothing dropped')
  t.equal(s.stats().clientPaused, false)
  c.close()
})

test('/ws upgrades count against the top-level rate limit', async (t) => {
  const gw = await startGateway(t, { rate_limit: { max: 2, window: '1m' } })
  const a = await WsClient.connect(gw.wsUrl)
  const b = await WsClient.connect(gw.wsUrl)
  t.equal(await upgradeStatus(gw.wsUrl), 429)
  a.close()
  b.close()
})

test('a plain HTTP GET on /ws gets a JSON 426 UPGRADE_REQUIRED', async (t) => {
  const gw = await startGateway(t)
  const res = await fetch(`${gw.url}/ws`)
  t.equal(res.status, 426)
  t.same(await res.json(), { error: { code: 'UPGRADE_REQUIRED', message: '/ws is a WebSocket endpoint: connect with a WebSocket upgrade' } })
})
