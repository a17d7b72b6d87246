import { test } from 'tap'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { buildGateway, startHttpUpstream, startWsUpstream, TestClient, upgradeStatus, waitFor } from '../helper.js'

async function freePort (): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as AddressInfo).port
  await new Promise(resolve => probe.close(resolve))
  return port
}

test('WebSocket echo through a route, text and binary, with path and query rewritten', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await buildGateway(t, { routes: [{ prefix: '/live', upstream: up.url, rewritePrefix: '/socket', websocket: true, auth: 'none' }] })
  const client = new TestClient(`${gw.wsUrl}/live/room/1?x=1`, { headers: { 'x-request-id': 'ws-req-1', 'x-user-id': 'forged' } })
  await client.open()
  client.send('hello')
  t.equal(await client.next(), 'hello')
  const bin = Buffer.from([0, 1, 2, 255])
  client.socket.send(bin)
  const echoed = await new Promise<Buffer>(resolve => client.socket.once('message', (d) => resolve(d as Buffer)))
  t.same([...echoed], [...bin])

  const req = up.requests[0]
  t.equal(req.url, '/socket/room/1?x=1')
  t.equal(req.headers['x-forwarded-for'], '127.0.0.1')
  t.equal(req.headers['x-request-id'], 'ws-req-1')
  t.equal(req.headers['x-user-id'], undefined)
  client.close()
  const closed = await client.closed
  t.equal(closed.code, 1005)
})

test('plain HTTP and WebSocket share a prefix', async (t) => {
  const up = await startHttpUpstream(t, (req, res) => { res.end(`http ${req.url ?? ''}`) })
  const { WebSocketServer } = await import('ws')
  const wss = new WebSocketServer({ server: up.server })
  const wsPaths: string[] = []
  wss.on('connection', (socket, req) => {
    wsPaths.push(req.url ?? '')
    socket.on('message', (d, isBinary) => socket.send(d, { binary: isBinary }))
  })
  const plain = await startHttpUpstream(t, (req, res) => { res.end(`plain ${req.url ?? ''}`) })
  const gw = await buildGateway(t, {
    routes: [
      { prefix: '/both', upstream: up.url, websocket: true, auth: 'none' },
      { prefix: '/plain', upstream: plain.url, auth: 'none' }
    ]
  })
  t.equal(await (await request(`${gw.url}/both/x`)).body.text(), 'http /x')
  const client = new TestClient(`${gw.wsUrl}/both`)
  await client.open()
  client.send('a')
  t.equal(await client.next(), 'a')
  client.close()
  // With a trailing slash too.
  const slash = new TestClient(`${gw.wsUrl}/both/`)
  await slash.open()
  slash.send('b')
  t.equal(await slash.next(), 'b')
  slash.close()
  t.same(wsPaths, ['/', '/'])

  // An upgrade on a route without websocket: true is closed at once and reaches no upstream.
  const refused = new TestClient(`${gw.wsUrl}/plain/x`)
  const closed = await refused.closed
  t.ok(closed.code >= 1000, `closed (${closed.code})`)
  t.equal(refused.queued, 0)
  t.equal(await (await request(`${gw.url}/plain/x`)).body.text(), 'plain /x')
})

test('messages the upstream sends on connect are not lost', async (t) => {
  const up = await startWsUpstream(t, (socket) => {
    socket.send('welcome-1')
    socket.send('welcome-2')
    socket.on('message', (d) => socket.send(`got ${d.toString()}`))
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/w', upstream: up.url, websocket: true, auth: 'none' }] })
  const client = new TestClient(`${gw.wsUrl}/w`)
  t.equal(await client.next(), 'welcome-1')
  t.equal(await client.next(), 'welcome-2')
  client.send('x')
  t.equal(await client.next(), 'got x')
  client.close()
})

test('close codes are relayed; an upstream that dies closes the client with 1014, never 1006', async (t) => {
  const sockets: Array<import('ws').WebSocket> = []
  const up = await startWsUpstream(t, (socket) => {
    sockets.push(socket)
    socket.on('message', (d) => {
      const cmd = d.toString()
      if (cmd === 'close4001') socket.close(4001, 'bye')
      if (cmd === 'die') (socket as unknown as { _socket: Socket })._socket.destroy()
      if (cmd === 'noreason') socket.close()
    })
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/w', upstream: up.url, websocket: true, auth: 'none' }] })

  const a = new TestClient(`${gw.wsUrl}/w`)
  await a.open()
  a.send('close4001')
  t.same(await a.closed, { code: 4001, reason: 'bye' })

  const b = new TestClient(`${gw.wsUrl}/w`)
  await b.open()
  b.send('die')
  const bClosed = await b.closed
  t.equal(bClosed.code, 1014)
  t.equal(bClosed.reason, 'upstream connection lost')

  const c = new TestClient(`${gw.wsUrl}/w`)
  await c.open()
  c.send('noreason')
  // A close frame without a code is relayed as it is: the client sees 1005, as it would directly.
  t.equal((await c.closed).code, 1005)

  // Client closes: the upstream side is closed with the same code.
  const d = new TestClient(`${gw.wsUrl}/w`)
  await d.open()
  await waitFor(() => sockets.length === 4, 'fourth upstream socket')
  const upstreamClosed = new Promise<number>(resolve => sockets[3].on('close', (code) => resolve(code)))
  d.close(4100)
  t.equal(await upstreamClosed, 4100)
  await waitFor(() => gw.app.websocketRelays.size === 0, 'gateway sockets released')
})

test('unreachable WebSocket upstream: the upgrade is answered 502, a slow one 504', async (t) => {
  const port = await freePort()
  const silent = createServer((socket) => { socket.on('data', () => {}) })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => { silent.close() })
  const notWs = await startHttpUpstream(t, (_req, res) => { res.statusCode = 404; res.end('no') })
  const gw = await buildGateway(t, {
    routes: [
      { prefix: '/dead', upstream: `http://127.0.0.1:${port}`, websocket: true, auth: 'none' },
      { prefix: '/slow', upstream: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, websocket: true, timeout: '300ms', auth: 'none' },
      { prefix: '/notws', upstream: notWs.url, websocket: true, auth: 'none' }
    ]
  })
  t.equal(await upgradeStatus(`${gw.wsUrl}/dead/x`), 502)
  t.equal(await upgradeStatus(`${gw.wsUrl}/slow/x`), 504)
  t.equal(await upgradeStatus(`${gw.wsUrl}/notws/x`), 502)
  t.equal((await request(`${gw.url}/health`)).statusCode, 200)
})

test('WebSocket routes refuse traversal and honour auth: required', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await buildGateway(t, {
    routes: [
      { prefix: '/open', upstream: up.url, websocket: true, auth: 'none' },
      { prefix: '/closed', upstream: up.url, websocket: true }
    ]
  })
  t.equal(await upgradeStatus(`${gw.wsUrl}/open/..%2fadmin`), 400)
  t.equal(await upgradeStatus(`${gw.wsUrl}/closed/x`), 401)
  t.equal(up.requests.length, 0)
})

test('proxied WebSocket routes and the /ws endpoint work on one port at the same time', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await buildGateway(t, {
    devices: [{ device_id: 'd-1', token: 'tok-1', user_id: 'u-1' }],
    routes: [{ prefix: '/live', upstream: up.url, websocket: true, auth: 'none' }]
  })
  const proxied = new TestClient(`${gw.wsUrl}/live`)
  const session = new TestClient(`${gw.wsUrl}/ws`)
  await Promise.all([proxied.open(), session.open()])
  session.send({ type: 'hello', device_id: 'd-1', token: 'tok-1' })
  proxied.send('through the route')
  const auth = await session.nextJson()
  t.equal(auth.type, 'auth_result')
  t.equal(auth.allowed, true)
  t.equal(await proxied.next(), 'through the route')
  session.send({ type: 'stream_open', stream_id: 1, upstream: 'echo' })
  session.send({ type: 'stream_data', stream_id: 1, data: Buffer.from('through /ws').toString('base64') })
  let frame = await session.nextJson()
  while (frame.type !== 'stream_data') frame = await session.nextJson()
  t.equal(Buffer.from(frame.data, 'base64').toString(), 'through /ws')
  t.equal(up.requests.length, 1, 'only the proxied socket reached the upstream')

  // Shutdown tells both kinds of client that the server is going away.
  const closing = gw.app.close()
  t.equal((await proxied.closed).code, 1001)
  t.equal((await session.closed).code, 1001)
  await closing
})

test('a plain request that only carries Upgrade: websocket is proxied as HTTP and opens no upstream socket', async (t) => {
  let wsConnections = 0
  const up = await startHttpUpstream(t, (req, res) => { res.end(`http ${req.url ?? ''}`) })
  const { WebSocketServer } = await import('ws')
  const wss = new WebSocketServer({ server: up.server })
  wss.on('connection', () => { wsConnections++ })
  const gw = await buildGateway(t, { routes: [{ prefix: '/live', upstream: up.url, websocket: true, auth: 'none' }] })
  const { connect } = await import('node:net')
  for (let i = 0; i < 20; i++) {
    // Raw: HTTP clients refuse to send an Upgrade header themselves.
    const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
    socket.write('GET /live/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n')
    let out = ''
    socket.on('data', (d: Buffer) => { out += d.toString() })
    await once(socket, 'close')
    t.match(out, /^HTTP\/1\.1 200[\s\S]*http \/x$/)
  }
  t.equal(wsConnections, 0, 'no upstream WebSocket was opened')
  t.equal(gw.app.connections.list().connections.length, 0)
})

test('an upstream URL with a path: the path is the default rewritePrefix, for HTTP and WebSocket', async (t) => {
  const up = await startWsUpstream(t)
  const http = await startHttpUpstream(t, (req, res) => { res.end(req.url) })
  const gw = await buildGateway(t, {
    routes: [
      { prefix: '/h', upstream: `${http.url}/v2`, auth: 'none' },
      { prefix: '/w', upstream: `${up.url}/socket/`, websocket: true, auth: 'none' }
    ]
  })
  t.equal(await (await request(`${gw.url}/h/users?id=1`)).body.text(), '/v2/users?id=1')
  const client = new TestClient(`${gw.wsUrl}/w/room`)
  await client.open()
  t.equal(up.requests[0].url, '/socket/room')
  client.close()
})

test('a proxied WebSocket is re-checked when its access token expires: kept while allowed, cut when revoked', async (t) => {
  const { startBackendStub, GOOD_TOKEN } = await import('../backend-stub.js')
  const stub = await startBackendStub(t)
  const up = await startWsUpstream(t)
  const gw = await buildGateway(t, {
    backend_base_url: stub.url,
    // JWT expiry has one-second steps: a shorter TTL could be spent before the upgrade.
    access_token_ttl: '2s',
    routes: [{ prefix: '/live', upstream: up.url, websocket: true, auth: 'required' }]
  })
  const tokenFor = async (device: string): Promise<string> => {
    const res = await request(`${gw.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device_id: device, token: GOOD_TOKEN }) })
    return (await res.body.json() as { access_token: string }).access_token
  }
  const kept = new TestClient(`${gw.wsUrl}/live`, { headers: { authorization: `Bearer ${await tokenFor('allow-kept')}` } })
  const cut = new TestClient(`${gw.wsUrl}/live`, { headers: { authorization: `Bearer ${await tokenFor('allow-cut')}` } })
  await Promise.all([kept.open(), cut.open()])
  const checksBefore = stub.requests.length
  stub.denied.add('allow-cut')
  t.same(await cut.closed, { code: 1008, reason: 'auth_revoked' })
  // The other was asked about afresh and goes on.
  await waitFor(() => stub.requests.filter(r => r.device_id === 'allow-kept').length >= 2, 'kept device re-checked')
  t.ok(stub.requests.length > checksBefore)
  kept.send('still here')
  t.equal(await kept.next(), 'still here')
  kept.close()
  await kept.closed
  await waitFor(() => gw.app.connections.list().connections.length === 0, 'registry empty')
})
