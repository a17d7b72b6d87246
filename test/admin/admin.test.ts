import { test } from 'tap'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import type WebSocket from 'ws'
import { buildGateway, startWsUpstream, TestClient, waitFor } from '../helper.js'
import { call, errorCode, type Test } from '../auth/support.js'

const ADMIN = 'admin-token-0123456789abcdef'
const API_KEY = 'ak_test_0123456789'
const auth = { authorization: `Bearer ${ADMIN}` }
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Resolves once `socket` has a pong for a ping: everything the peer sent before it has been read. */
async function roundTrip (socket: WebSocket): Promise<void> {
  const pong = once(socket, 'pong')
  socket.ping()
  await pong
}

/** A recording upstream: keeps every message and the server-side socket, echoes nothing. */
async function recordingUpstream (t: Test): Promise<{ url: string, received: string[], sockets: WebSocket[] }> {
  const received: string[] = []
  const sockets: WebSocket[] = []
  const up = await startWsUpstream(t, (socket) => {
    sockets.push(socket)
    socket.on('message', (data) => received.push(data.toString()))
  })
  return { url: up.url, received, sockets }
}

async function adminGateway (t: Test, upstream: string, overrides: Record<string, unknown> = {}): Promise<Awaited<ReturnType<typeof buildGateway>>> {
  return await buildGateway(t, {
    admin_token: ADMIN,
    metrics_enabled: true,
    api_keys: [{ key_sha256: sha256(API_KEY), user_id: 'user-k' }],
    routes: [{ prefix: '/live', upstream, websocket: true }],
    ...overrides
  })
}

test('without GATEWAY_ADMIN_TOKEN the admin routes do not exist', async (t) => {
  const gw = await buildGateway(t)
  for (const [method, path] of [['GET', '/admin/connections'], ['GET', '/admin/connections/x'], ['POST', '/admin/auth/invalidate'], ['DELETE', '/admin/connections/x']] as const) {
    const res = await call(method, `${gw.url}${path}`, method === 'POST' ? { user_id: 'u' } : undefined, auth)
    t.equal(res.status, 404, `${method} ${path}`)
    t.equal(errorCode(res), 'NOT_FOUND')
  }
  const docs = await call('GET', `${gw.url}/docs/json`)
  t.notOk(Object.keys(docs.body.paths).some(p => p.startsWith('/admin')), 'nor are they documented')
})

test('admin bearer token: missing or wrong is 401, unknown ids are 404', async (t) => {
  const up = await recordingUpstream(t)
  const gw = await adminGateway(t, up.url)
  const missing = await call('GET', `${gw.url}/admin/connections`)
  t.equal(missing.status, 401)
  t.equal(errorCode(missing), 'UNAUTHORIZED')
  t.match(missing.headers['www-authenticate'], /^Bearer/)
  t.equal((await call('GET', `${gw.url}/admin/connections`, undefined, { authorization: `Bearer ${ADMIN}x` })).status, 401)
  t.equal((await call('GET', `${gw.url}/admin/connections`, undefined, { authorization: ADMIN })).status, 401)
  t.equal((await call('GET', `${gw.url}/admin/connections`, undefined, { authorization: `Bearer ${ADMIN.slice(0, 4)}\t${ADMIN.slice(4)}` })).status, 401)
  t.equal((await call('GET', `${gw.url}/admin/connections`, undefined, { authorization: `bearer  ${ADMIN}` })).status, 200, 'the scheme in any case')
  t.equal((await call('POST', `${gw.url}/admin/auth/invalidate`, { user_id: 'u' })).status, 401)

  const list = await call('GET', `${gw.url}/admin/connections`, undefined, auth)
  t.same(list.body, { connections: [], next_cursor: null })
  for (const [method, path] of [['GET', ''], ['POST', '/pause'], ['POST', '/resume'], ['DELETE', '']] as const) {
    const res = await call(method, `${gw.url}/admin/connections/7b0f5c44-0000-4000-8000-000000000000${path}`, undefined, auth)
    t.equal(res.status, 404, `${method} ${path}`)
    t.equal(errorCode(res), 'CONNECTION_NOT_FOUND')
  }
  t.equal((await call('GET', `${gw.url}/admin/connections?state=bogus`, undefined, auth)).status, 400)
  t.equal((await call('GET', `${gw.url}/admin/connections?limit=0`, undefined, auth)).status, 400)
  t.equal((await call('POST', `${gw.url}/admin/auth/invalidate`, {}, auth)).status, 400)
})

test('pause holds a proxied WebSocket both ways; resume delivers in order, nothing lost', async (t) => {
  const up = await recordingUpstream(t)
  const gw = await adminGateway(t, up.url)
  const client = new TestClient(`${gw.wsUrl}/live/room`, { headers: { 'x-api-key': API_KEY } })
  await client.open()
  await waitFor(() => up.sockets.length === 1, 'upstream connection')
  const upstream = up.sockets[0]

  const listed = (await call('GET', `${gw.url}/admin/connections?user_id=user-k`, undefined, auth)).body.connections
  t.equal(listed.length, 1)
  const id: string = listed[0].id
  t.match(listed[0], { kind: 'ws_proxy', route: '/live', remote_address: '127.0.0.1', user_id: 'user-k', device_id: null, method: 'api_key', state: 'running', open_streams: 0 })

  const conflict = await call('POST', `${gw.url}/admin/connections/${id}/resume`, undefined, auth)
  t.equal(conflict.status, 409)
  t.equal(errorCode(conflict), 'ILLEGAL_TRANSITION')

  client.send('before')
  await waitFor(() => up.received.length === 1, 'first message')
  const paused = await call('POST', `${gw.url}/admin/connections/${id}/pause`, undefined, auth)
  t.equal(paused.status, 200)
  t.equal(paused.body.state, 'paused')
  t.equal(errorCode(await call('POST', `${gw.url}/admin/connections/${id}/pause`, undefined, auth)), 'ILLEGAL_TRANSITION')

  const up1 = Array.from({ length: 20 }, (_, i) => `c${i}`)
  const down1 = Array.from({ length: 20 }, (_, i) => `u${i}`)
  for (const m of up1) client.send(m)
  for (const m of down1) upstream.send(m)
  // Pings are answered while paused; once both pongs are back the gateway has read (and held) all of it.
  await roundTrip(client.socket)
  await roundTrip(upstream)
  await roundTrip(client.socket)
  t.same(up.received, ['before'], 'nothing reached the upstream while paused')
  t.equal(client.queued, 0, 'nothing reached the client while paused')
  const got: string[] = []
  client.socket.on('message', (d) => got.push(d.toString()))
  t.equal((await call('GET', `${gw.url}/admin/connections/${id}`, undefined, auth)).body.state, 'paused')

  const resumed = await call('POST', `${gw.url}/admin/connections/${id}/resume`, undefined, auth)
  t.equal(resumed.body.state, 'running')
  await waitFor(() => up.received.length === 21 && got.length === 20, 'held messages delivered')
  t.same(up.received, ['before', ...up1])
  t.same(got, down1)

  const info = (await call('GET', `${gw.url}/admin/connections/${id}`, undefined, auth)).body
  t.match(info, { messages_in: 21, messages_out: 20, bytes_in: 6 + up1.join('').length, bytes_out: down1.join('').length })
  t.match(await gw.app.promRegistry.metrics(), /httvps_gateway_connections\{state="running"\} 1/)

  const stopped = await call('DELETE', `${gw.url}/admin/connections/${id}`, undefined, auth)
  t.equal(stopped.status, 200)
  t.equal(stopped.body.state, 'stopping')
  t.same(await client.closed, { code: 1008, reason: 'stopped_by_admin' })
  await waitFor(() => gw.app.connections.size === 0, 'registry empty')
  t.equal(errorCode(await call('DELETE', `${gw.url}/admin/connections/${id}`, undefined, auth)), 'CONNECTION_NOT_FOUND')
})

test('over the pause bound the gateway stops reading (backpressure), and drops nothing', async (t) => {
  const up = await recordingUpstream(t)
  const gw = await adminGateway(t, up.url, { pause_buffer_bytes: 1024 })
  const client = new TestClient(`${gw.wsUrl}/live`, { headers: { 'x-api-key': API_KEY } })
  await client.open()
  await waitFor(() => up.sockets.length === 1, 'upstream connection')
  const [connection] = gw.app.connections.find({ user_id: 'user-k' })
  gw.app.connections.pause(connection.id)

  const chunk = 64 * 1024
  const count = 512
  for (let i = 0; i < count; i++) client.socket.send(Buffer.alloc(chunk, i % 256))
  await waitFor(() => connection.bytesIn > 0, 'reading started')
  // Wait until the gateway stops taking more; with reading not stopped it would take all 32 MiB.
  let last = -1
  let stable = 0
  await waitFor(() => {
    stable = connection.bytesIn === last ? stable + 1 : 0
    last = connection.bytesIn
    return stable >= 20 || connection.bytesIn === chunk * count
  }, 'intake to settle', 30_000)
  t.ok(connection.bytesIn < chunk * count, `gateway read ${connection.bytesIn} of ${chunk * count} bytes while paused`)
  t.equal(up.received.length, 0)

  gw.app.connections.resume(connection.id)
  await waitFor(() => up.received.length === count, 'everything delivered', 30_000)
  t.equal(connection.bytesIn, chunk * count)

  // Stopping a paused connection that is no longer read still completes the close handshake.
  gw.app.connections.pause(connection.id)
  for (let i = 0; i < 64; i++) client.socket.send(Buffer.alloc(chunk))
  await waitFor(() => connection.bytesIn > chunk * count, 'more read while paused')
  gw.app.connections.stop(connection.id, 1008, 'stopped_by_admin')
  t.same(await client.closed, { code: 1008, reason: 'stopped_by_admin' })
  await waitFor(() => gw.app.connections.size === 0, 'registry empty')
})

test('the registry is empty again once every client has left', async (t) => {
  const up = await recordingUpstream(t)
  const gw = await adminGateway(t, up.url)
  const clients = Array.from({ length: 4 }, () => new TestClient(`${gw.wsUrl}/live`, { headers: { 'x-api-key': API_KEY } }))
  await Promise.all(clients.map(async c => await c.open()))
  await waitFor(async () => (await call('GET', `${gw.url}/admin/connections`, undefined, auth)).body.connections.length === 4, 'four listed')
  const page = await call('GET', `${gw.url}/admin/connections?limit=3`, undefined, auth)
  t.equal(page.body.connections.length, 3)
  const rest = await call('GET', `${gw.url}/admin/connections?limit=3&cursor=${page.body.next_cursor as string}`, undefined, auth)
  t.equal(rest.body.connections.length, 1)
  t.equal(rest.body.next_cursor, null)

  clients[0].close()
  clients[1].socket.terminate()
  up.sockets[2].close(1000)
  up.sockets[3].terminate()
  await Promise.all(clients.map(async c => await c.closed))
  await waitFor(async () => (await call('GET', `${gw.url}/admin/connections`, undefined, auth)).body.connections.length === 0, 'registry empty')
  t.equal(gw.app.connections.size, 0)
})

test('OpenAPI at /docs/json documents the typed routes; the UI only when enabled', async (t) => {
  const up = await recordingUpstream(t)
  const gw = await adminGateway(t, up.url)
  const docs = await call('GET', `${gw.url}/docs/json`)
  t.equal(docs.status, 200)
  t.equal(docs.body.openapi, '3.0.3')
  for (const path of ['/auth/token', '/auth/refresh', '/admin/connections', '/admin/connections/{id}', '/admin/connections/{id}/pause', '/admin/connections/{id}/resume', '/admin/auth/invalidate']) {
    t.ok(docs.body.paths[path], path)
  }
  t.ok(docs.body.paths['/admin/connections/{id}'].delete.responses['404'])
  t.ok(docs.body.paths['/admin/connections/{id}/resume'].post.responses['409'])
  t.notOk(Object.keys(docs.body.paths).some(p => p.startsWith('/live')), 'proxied routes are not documented')
  t.equal((await call('GET', `${gw.url}/docs`)).status, 404)

  const withUi = await adminGateway(t, up.url, { docs_ui: true })
  t.equal((await call('GET', `${withUi.url}/docs/json`)).status, 200)
  const ui = await call('GET', `${withUi.url}/docs`)
  t.equal(ui.status, 200)
  t.match(ui.body, /swagger-ui/i)
})
