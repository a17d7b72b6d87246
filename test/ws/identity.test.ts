import { createHash } from 'node:crypto'
import { test } from 'tap'
import { call, errorCode } from '../auth/support.js'
import { claims, hmacToken } from '../auth/jwt-tools.js'
import { GOOD_TOKEN, startBackendStub, type BackendStub } from '../backend-stub.js'
import { startGateway, waitFor, WsClient, type Frame, type Gateway } from './helpers.js'

const ADMIN = 'admin-token-0123456789abcdef'
const admin = { authorization: `Bearer ${ADMIN}` }
const API_KEY = 'ak_identity_0123456789'
const JWT_SECRET = 'external-secret-0123456789abcdef!'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

type Test = Parameters<typeof startGateway>[0]

/** The gateway with a backend stub, one API key, external HS256 JWTs and the admin API. */
async function identityGateway (t: Test, overrides: Record<string, unknown> = {}, opts: { logs?: boolean } = {}): Promise<{ gw: Gateway, stub: BackendStub }> {
  const stub = await startBackendStub(t)
  const gw = await startGateway(t, {
    backend_base_url: stub.url,
    devices: [],
    admin_token: ADMIN,
    metrics_enabled: true,
    api_keys: [{ key_sha256: createHash('sha256').update(API_KEY).digest('hex'), user_id: 'user-k' }],
    external_jwt: { secret: JWT_SECRET, algorithms: ['HS256'] },
    ...overrides
  }, opts)
  return { gw, stub }
}

function externalJwt (extra: Record<string, unknown> = {}): string {
  return hmacToken(JWT_SECRET, claims({ sub: 'user-j', device_id: 'dev-j', ...extra }))
}

async function metric (gw: Gateway, pattern: RegExp): Promise<boolean> {
  return pattern.test(await gw.app.promRegistry.metrics())
}

/** Frames until one of `type` arrives; the others are returned with it. */
async function until (c: WsClient, type: string): Promise<{ frame: Frame, others: Frame[] }> {
  const others: Frame[] = []
  for (;;) {
    const frame = await c.frame()
    if (frame.type === type) return { frame, others }
    others.push(frame)
  }
}

async function echoes (c: WsClient, streamId: string, text: string): Promise<string> {
  c.write(streamId, text)
  return (await c.read(streamId, Buffer.byteLength(text))).bytes.toString()
}

async function empty (gw: Gateway): Promise<void> {
  await waitFor(() => gw.app.sessions.stats().connections === 0 && gw.app.connections.size === 0, 'sessions and registry to empty')
}

test('hello with an API key: good and bad', async (t) => {
  const { gw, stub } = await identityGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  const auth = await c.helloWith({ api_key: API_KEY })
  t.match(auth, { type: 'auth_result', allowed: true, user_id: 'user-k', session_id: UUID, expires_in: 900 })
  t.type(auth.access_token, 'string')
  t.type(auth.refresh_token, 'string')
  t.notOk('subscription_status' in auth)
  t.equal(stub.requests.length, 0, 'the backend was not asked')
  t.match(gw.app.connections.get(auth.session_id)?.info(), { kind: 'session', route: '/ws', user_id: 'user-k', device_id: null, method: 'api_key', state: 'running' })
  c.openStream('e')
  t.equal(await echoes(c, 'e', 'key session'), 'key session')

  const bad = await WsClient.connect(gw.wsUrl)
  t.same(await bad.helloWith({ api_key: 'ak_wrong' }), { type: 'auth_result', allowed: false, reason: 'invalid_credentials' })
  t.same(await bad.closed, { code: 1008, reason: 'invalid_credentials' })
  t.ok(await metric(gw, /httvps_gateway_handshakes_total\{result="accepted"\} 1\n/))
  t.ok(await metric(gw, /httvps_gateway_handshakes_total\{result="rejected"\} 1\n/))
  c.close()
  await empty(gw)
})

test('hello takes exactly one kind of credentials', async (t) => {
  const { gw } = await identityGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  c.send({ type: 'hello' })
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /device_id and token, api_key, or access_token/ })
  c.send({ type: 'hello', api_key: API_KEY, access_token: 'x' })
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /exactly one/ })
  c.send({ type: 'hello', device_id: 'allow-1', token: GOOD_TOKEN, api_key: API_KEY })
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /exactly one/ })
  c.send({ type: 'hello', token: GOOD_TOKEN })
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /device_id/ })
  c.send({ type: 'auth_refresh', refresh_token: 'x' })
  t.match(await c.expect('error'), { code: 'NOT_AUTHENTICATED' })
  t.match(await c.helloWith({ api_key: API_KEY }), { allowed: true })
  c.close()
  await empty(gw)
})

test('hello with a gateway access token skips the backend; the auth_result carries no new tokens', async (t) => {
  const { gw, stub } = await identityGateway(t)
  const login = await call('POST', `${gw.url}/auth/token`, { device_id: 'allow-t1', token: GOOD_TOKEN })
  t.equal(login.status, 200)
  t.equal(stub.requests.length, 1)

  const c = await WsClient.connect(gw.wsUrl)
  const auth = await c.helloWith({ access_token: login.body.access_token })
  t.match(auth, { allowed: true, user_id: 'user-of-allow-t1', subscription_status: 'active' })
  t.notOk('access_token' in auth || 'refresh_token' in auth || 'expires_in' in auth, 'no second login is minted from an access token')
  t.equal(stub.requests.length, 1, 'the backend stub was not called for the hello')
  t.match(gw.app.connections.get(auth.session_id)?.info(), { user_id: 'user-of-allow-t1', device_id: 'allow-t1', method: 'device' })

  // The pair a device session got works for the next session too.
  const first = await WsClient.connect(gw.wsUrl)
  const firstAuth = await first.hello('allow-t2', GOOD_TOKEN)
  t.equal(stub.requests.length, 2)
  const second = await WsClient.connect(gw.wsUrl)
  t.match(await second.helloWith({ access_token: firstAuth.access_token }), { allowed: true, user_id: 'user-of-allow-t2' })
  t.equal(stub.requests.length, 2, 'again without the backend')

  // Its refresh token renews the access-token session in band.
  second.send({ type: 'auth_refresh', refresh_token: firstAuth.refresh_token })
  const renewed = await second.expect('auth_result')
  t.match(renewed, { allowed: true, user_id: 'user-of-allow-t2', expires_in: 900 })
  t.not(renewed.refresh_token, firstAuth.refresh_token)

  const forged = await WsClient.connect(gw.wsUrl)
  t.same(await forged.helloWith({ access_token: `${login.body.access_token as string}x` }), { type: 'auth_result', allowed: false, reason: 'invalid_credentials' })
  t.equal((await forged.closed).code, 1008)
  for (const client of [c, first, second]) client.close()
  await empty(gw)
})

test('hello with an external JWT when configured, refused when not', async (t) => {
  const { gw, stub } = await identityGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  const auth = await c.helloWith({ access_token: externalJwt() })
  t.match(auth, { allowed: true, user_id: 'user-j', expires_in: 900 })
  t.type(auth.access_token, 'string')
  t.type(auth.refresh_token, 'string')
  t.equal(stub.requests.length, 0)
  t.match(gw.app.connections.get(auth.session_id)?.info(), { user_id: 'user-j', device_id: 'dev-j', method: 'jwt' })

  const expired = await WsClient.connect(gw.wsUrl)
  t.same(await expired.helloWith({ access_token: externalJwt({ iat: 1, exp: 2 }) }), { type: 'auth_result', allowed: false, reason: 'token_expired' })
  t.same(await expired.closed, { code: 1008, reason: 'token_expired' })
  c.close()

  const plain = await startGateway(t)
  const d = await WsClient.connect(plain.wsUrl)
  t.same(await d.helloWith({ access_token: externalJwt() }), { type: 'auth_result', allowed: false, reason: 'invalid_credentials' })
  t.equal((await d.closed).code, 1008)
  await empty(gw)
})

test('auth_refresh rotates the pair in band; a reused token revokes the family; the session goes on', async (t) => {
  const { gw } = await identityGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  const first = await c.helloWith({ api_key: API_KEY })
  c.openStream('e')
  t.equal(await echoes(c, 'e', 'before'), 'before')

  c.send({ type: 'auth_refresh', refresh_token: first.refresh_token })
  const second = await c.expect('auth_result')
  t.match(second, { allowed: true, session_id: first.session_id, user_id: 'user-k', expires_in: 900 })
  t.not(second.refresh_token, first.refresh_token)
  t.type(second.access_token, 'string')

  c.send({ type: 'auth_refresh', refresh_token: 'not-a-refresh-token' })
  t.match(await c.expect('error'), { code: 'INVALID_REFRESH_TOKEN' })
  c.send({ type: 'auth_refresh', refresh_token: first.refresh_token })
  t.match(await c.expect('error'), { code: 'INVALID_REFRESH_TOKEN', message: /already used/ })
  c.send({ type: 'auth_refresh', refresh_token: second.refresh_token })
  t.match(await c.expect('error'), { code: 'INVALID_REFRESH_TOKEN' }, 'the whole family is revoked')
  t.equal(await echoes(c, 'e', 'after'), 'after', 'the session and its stream go on')
  t.equal(gw.app.connections.get(first.session_id)?.state, 'running')

  // A refresh token of another identity does not switch the session's owner.
  const other = await WsClient.connect(gw.wsUrl)
  const otherAuth = await other.helloWith({ access_token: externalJwt() })
  c.send({ type: 'auth_refresh', refresh_token: otherAuth.refresh_token })
  t.match(await c.expect('error'), { code: 'INVALID_REFRESH_TOKEN', message: /another identity/ })
  t.equal(gw.app.connections.get(first.session_id)?.info().user_id, 'user-k')

  t.ok(await metric(gw, /httvps_gateway_token_refresh_total\{result="reused"\} [1-9]\n/))
  t.ok(await metric(gw, /httvps_gateway_token_refresh_total\{result="invalid"\} [1-9]\n/))
  c.close()
  other.close()
  await empty(gw)
})

test('expiry: a device still allowed is re-checked afresh and continues; once denied it is closed with auth_revoked', async (t) => {
  const { gw, stub } = await identityGateway(t, { access_token_ttl: '400ms' }, { logs: true })
  const c = await WsClient.connect(gw.wsUrl)
  const first = await c.hello('allow-e1', GOOD_TOKEN)
  t.match(first, { allowed: true })
  c.openStream('e')
  t.equal(await echoes(c, 'e', 'one'), 'one')
  const checks = stub.requests.length

  // Still allowed: a fresh auth_result with a new access token in the same login, nothing else changes.
  const { frame: fresh, others } = await until(c, 'auth_result')
  t.match(fresh, { allowed: true, session_id: first.session_id, user_id: 'user-of-allow-e1' })
  t.type(fresh.access_token, 'string')
  t.equal(fresh.refresh_token, undefined, 'no new login per re-check: the client keeps its refresh token')
  const { frame: again } = await until(c, 'auth_result')
  t.equal(again.refresh_token, undefined)
  // The one refresh token of the session still works, once.
  const spent = await fetch(`${gw.url}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: first.refresh_token }) })
  t.equal(spent.status, 200)
  t.same(others, [], 'no stream was closed')
  t.ok(stub.requests.length > checks, 'the backend was asked again (no cache)')
  t.equal(await echoes(c, 'e', 'two'), 'two', 'the open stream still works')
  const moves = gw.logs.map(l => JSON.parse(l)).filter(e => e.connection_id === first.session_id && e.msg === 'connection state').map(e => e.to)
  t.match(moves.join(' '), /^authorizing running refreshing running/, 'running → refreshing → running in the registry')

  stub.denied.add('allow-e1')
  t.same(await c.closed, { code: 1008, reason: 'auth_revoked' })
  t.ok(await metric(gw, /httvps_gateway_token_refresh_total\{result="ok"\} [1-9]/))
  t.ok(await metric(gw, /httvps_gateway_token_refresh_total\{result="refused"\} 1\n/))
  t.ok(gw.logs.some(l => l.includes('"session_revoked"')))
  await empty(gw)
})

test('expiry: a session opened with a gateway access token is re-checked by its login\'s method, without new tokens', async (t) => {
  // Whole seconds: the token's exp has a one-second resolution.
  const { gw, stub } = await identityGateway(t, { access_token_ttl: '2s' })
  const login = await call('POST', `${gw.url}/auth/token`, { device_id: 'allow-x1', token: GOOD_TOKEN })
  const c = await WsClient.connect(gw.wsUrl)
  const first = await c.helloWith({ access_token: login.body.access_token })
  t.match(first, { allowed: true, user_id: 'user-of-allow-x1' })
  const checks = stub.requests.length
  const { frame: fresh } = await until(c, 'auth_result')
  t.match(fresh, { allowed: true, session_id: first.session_id, user_id: 'user-of-allow-x1' })
  t.notOk('refresh_token' in fresh, 'no login is minted from an access token')
  t.ok(stub.requests.length > checks, 'the device was asked afresh')
  c.close()
  await empty(gw)
})

test('expiry: a JWT session must send auth_refresh within the grace period', async (t) => {
  const { gw } = await identityGateway(t, { access_token_ttl: '300ms', jwt_refresh_grace: '300ms' })
  const c = await WsClient.connect(gw.wsUrl)
  t.match(await c.helloWith({ access_token: externalJwt() }), { allowed: true })
  const { frame } = await until(c, 'auth_refresh_required')
  t.same(frame, { type: 'auth_refresh_required', reason: 'expired', grace_ms: 300 })
  t.same(await c.closed, { code: 1008, reason: 'auth_expired' })
  t.ok(await metric(gw, /httvps_gateway_token_refresh_total\{result="expired"\} 1\n/))
  await empty(gw)
})

test('expiry: a JWT session that refreshes in time goes on, streams untouched', async (t) => {
  const { gw } = await identityGateway(t, { access_token_ttl: '300ms', jwt_refresh_grace: '10s' })
  const c = await WsClient.connect(gw.wsUrl)
  const first = await c.helloWith({ access_token: externalJwt() })
  c.openStream('e')
  t.equal(await echoes(c, 'e', 'one'), 'one')
  await until(c, 'auth_refresh_required')
  t.equal(gw.app.connections.get(first.session_id)?.state, 'refreshing')
  t.equal(await echoes(c, 'e', 'two'), 'two', 'streams flow while refreshing')
  c.send({ type: 'auth_refresh', refresh_token: first.refresh_token })
  const { frame: renewed } = await until(c, 'auth_result')
  t.match(renewed, { allowed: true, session_id: first.session_id, user_id: 'user-j' })
  t.not(renewed.refresh_token, first.refresh_token)
  t.equal(await echoes(c, 'e', 'three'), 'three')
  c.close()
  await empty(gw)
})

test('admin: list, pause holds stream data, resume delivers it in order, DELETE closes with stopped_by_admin', async (t) => {
  const { gw } = await identityGateway(t)
  const dev = await WsClient.connect(gw.wsUrl)
  const devAuth = await dev.hello('allow-a1', GOOD_TOKEN)
  const key = await WsClient.connect(gw.wsUrl)
  const keyAuth = await key.helloWith({ api_key: API_KEY })

  const listed = await call('GET', `${gw.url}/admin/connections`, undefined, admin)
  t.equal(listed.status, 200)
  t.match(listed.body.connections, [
    { id: devAuth.session_id, kind: 'session', route: '/ws', remote_address: '127.0.0.1', user_id: 'user-of-allow-a1', device_id: 'allow-a1', method: 'device', state: 'running' },
    { id: keyAuth.session_id, kind: 'session', user_id: 'user-k', device_id: null, method: 'api_key', state: 'running' }
  ])
  const byDevice = await call('GET', `${gw.url}/admin/connections?device_id=allow-a1`, undefined, admin)
  t.equal(byDevice.body.connections.length, 1)

  dev.openStream('e')
  t.equal(await echoes(dev, 'e', 'x'), 'x')
  const paused = await call('POST', `${gw.url}/admin/connections/${devAuth.session_id as string}/pause`, undefined, admin)
  t.match(paused.body, { state: 'paused' })
  const session = gw.app.sessions.get(devAuth.session_id)
  t.equal(session?.state, 'paused')
  t.equal(errorCode(await call('POST', `${gw.url}/admin/connections/${devAuth.session_id as string}/pause`, undefined, admin)), 'ILLEGAL_TRANSITION')
  const parts = ['one ', 'two ', 'three']
  for (const part of parts) dev.write('e', part)
  await waitFor(() => (session?.stats().heldBytes ?? 0) > 0 && (gw.app.connections.get(devAuth.session_id)?.messagesIn ?? 0) >= 6, 'the frames to be held')

  const resumed = await call('POST', `${gw.url}/admin/connections/${devAuth.session_id as string}/resume`, undefined, admin)
  t.match(resumed.body, { state: 'running' })
  t.equal((await dev.read('e', 'one two three'.length)).bytes.toString(), 'one two three', 'held data delivered in order')
  t.equal(errorCode(await call('POST', `${gw.url}/admin/connections/${devAuth.session_id as string}/resume`, undefined, admin)), 'ILLEGAL_TRANSITION')

  const info = (await call('GET', `${gw.url}/admin/connections/${devAuth.session_id as string}`, undefined, admin)).body
  t.match(info, { open_streams: 1 })
  t.ok(info.messages_in >= 5 && info.messages_out >= 3 && info.bytes_in > 0 && info.bytes_out > 0, 'traffic is counted')

  const stopped = await call('DELETE', `${gw.url}/admin/connections/${keyAuth.session_id as string}`, undefined, admin)
  t.equal(stopped.status, 200)
  t.same(await key.closed, { code: 1008, reason: 'stopped_by_admin' })
  await waitFor(() => gw.app.connections.size === 1, 'the stopped session to leave the registry')
  t.equal((await call('GET', `${gw.url}/admin/connections/${keyAuth.session_id as string}`, undefined, admin)).status, 404)
  dev.close()
  await empty(gw)
})

test('invalidate: a revoked device\'s session is closed with auth_revoked; others stay; JWT sessions must refresh', async (t) => {
  const { gw, stub } = await identityGateway(t)
  const a = await WsClient.connect(gw.wsUrl)
  const aAuth = await a.hello('allow-i1', GOOD_TOKEN)
  const b = await WsClient.connect(gw.wsUrl)
  const bAuth = await b.hello('allow-i2', GOOD_TOKEN)
  const j = await WsClient.connect(gw.wsUrl)
  const jAuth = await j.helloWith({ access_token: externalJwt() })

  const kept = await call('POST', `${gw.url}/admin/auth/invalidate`, { device_id: 'allow-i1' }, admin)
  t.match(kept.body, { connections_checked: 1, connections_stopped: 0 })
  t.equal(gw.app.connections.get(aAuth.session_id)?.state, 'running')

  stub.denied.add('allow-i1')
  const revoked = await call('POST', `${gw.url}/admin/auth/invalidate`, { device_id: 'allow-i1' }, admin)
  t.match(revoked.body, { connections_checked: 1, connections_stopped: 1 })
  t.same(await a.closed, { code: 1008, reason: 'auth_revoked' })
  t.equal(gw.app.connections.get(bAuth.session_id)?.state, 'running', 'another device is untouched')

  const jwt = await call('POST', `${gw.url}/admin/auth/invalidate`, { user_id: 'user-j' }, admin)
  t.match(jwt.body, { connections_checked: 1, connections_stopped: 0, refresh_required: 1 })
  t.same(await j.expect('auth_refresh_required'), { type: 'auth_refresh_required', reason: 'invalidated', grace_ms: 30_000 })
  t.equal(gw.app.connections.get(jAuth.session_id)?.state, 'refreshing')
  j.send({ type: 'auth_refresh', refresh_token: jAuth.refresh_token })
  t.match(await j.expect('auth_result'), { allowed: true, user_id: 'user-j' })
  t.equal(gw.app.connections.get(jAuth.session_id)?.state, 'running')

  b.close()
  j.close()
  await empty(gw)
})

test('after every kind of session leaves, no session, registry entry or timer remains', async (t) => {
  const { gw } = await identityGateway(t, { access_token_ttl: '300ms', jwt_refresh_grace: '10s' })
  const timeouts = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
  const before = timeouts()
  const dev = await WsClient.connect(gw.wsUrl)
  await dev.hello('allow-c1', GOOD_TOKEN)
  const key = await WsClient.connect(gw.wsUrl)
  await key.helloWith({ api_key: API_KEY })
  const jwt = await WsClient.connect(gw.wsUrl)
  await jwt.helloWith({ access_token: externalJwt() })
  const idle = await WsClient.connect(gw.wsUrl)
  // Each has been through at least one re-authorization (or is in its grace period).
  await until(dev, 'auth_result')
  await until(key, 'auth_result')
  await until(jwt, 'auth_refresh_required')
  t.equal(gw.app.connections.size, 4)

  dev.close()
  key.socket.terminate()
  jwt.close()
  idle.close()
  await empty(gw)
  t.same(gw.app.sessions.stats(), { connections: 0, sessions: 0, streams: 0 })
  t.same(gw.app.sessions.list(), [])
  await waitFor(() => timeouts() <= before, 'timers to be cleared')
  t.ok(timeouts() <= before, 'no timer left')
})
