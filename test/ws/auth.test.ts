import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'
import { loadConfig } from '../../lib/config.js'
import { GOOD_TOKEN, startBackendStub } from '../backend-stub.js'
import { closedPort, DEVICE, session, startGateway, waitFor, WsClient } from './helpers.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

async function metricValue (gw: { app: { promRegistry: { getSingleMetric: (n: string) => any } } }, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = gw.app.promRegistry.getSingleMetric(name)
  if (metric === undefined) return NaN
  const { values } = await metric.get()
  const found = values.find((v: { labels: Record<string, string> }) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
  return found?.value ?? 0
}

test('embedded device list: a good hello starts a session', async (t) => {
  const gw = await startGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  const auth = await c.hello()
  t.match(auth, { type: 'auth_result', allowed: true, user_id: 'user-1', subscription_status: 'active' })
  t.match(auth.session_id, UUID)
  t.equal(gw.app.sessions.get(auth.session_id)?.deviceId, DEVICE.device_id)
  t.same(gw.app.sessions.stats(), { connections: 1, sessions: 1, streams: 0 })
  t.equal(await metricValue(gw, 'httvps_gateway_handshakes_total', { result: 'accepted' }), 1)
  t.equal(await metricValue(gw, 'httvps_gateway_active_sessions'), 1)
  c.close()
  await c.closed
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'the session to end')
  t.equal(await metricValue(gw, 'httvps_gateway_active_sessions'), 0)
})

test('embedded device list: token_sha256, and no subscription_status', async (t) => {
  const digest = createHash('sha256').update('hashed-secret').digest('hex')
  const gw = await startGateway(t, { devices: [{ device_id: 'h-1', token_sha256: digest.toUpperCase(), user_id: 'u-h' }] })
  const c = await WsClient.connect(gw.wsUrl)
  const auth = await c.hello('h-1', 'hashed-secret')
  t.match(auth, { allowed: true, user_id: 'u-h' })
  t.notOk('subscription_status' in auth)
  c.close()
})

test('embedded device list: a wrong token or an unknown device is refused with 1008', async (t) => {
  const gw = await startGateway(t)
  for (const [device, token] of [[DEVICE.device_id, 'wrong'], ['nobody', DEVICE.token], [DEVICE.device_id, DEVICE.token + 'x']]) {
    const c = await WsClient.connect(gw.wsUrl)
    const auth = await c.hello(device, token)
    t.same(auth, { type: 'auth_result', allowed: false, reason: 'invalid_credentials' })
    const closed = await c.closed
    t.equal(closed.code, 1008)
  }
  t.equal(await metricValue(gw, 'httvps_gateway_handshakes_total', { result: 'rejected' }), 3)
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'connections to go')
})

test('NOT_AUTHENTICATED before the hello; the connection stays up', async (t) => {
  const gw = await startGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  c.openStream(1)
  t.match(await c.expect('error'), { code: 'NOT_AUTHENTICATED', stream_id: 1 })
  c.write('s', 'data')
  t.match(await c.expect('error'), { code: 'NOT_AUTHENTICATED', stream_id: 's' })
  c.closeStream(2)
  t.match(await c.expect('error'), { code: 'NOT_AUTHENTICATED' })
  c.send({ type: 'ping' })
  t.match(await c.expect('error'), { code: 'NOT_AUTHENTICATED' })
  // A malformed hello is a bad frame, and the hello can still come.
  c.send({ type: 'hello', device_id: DEVICE.device_id })
  t.match(await c.expect('error'), { code: 'BAD_FRAME', message: /token/ })
  t.match(await c.hello(), { allowed: true })
  c.send({ type: 'hello', device_id: DEVICE.device_id, token: DEVICE.token })
  t.match(await c.expect('error'), { code: 'ALREADY_AUTHENTICATED' })
  c.openStream(1)
  c.write(1, 'ok')
  t.equal((await c.expect('stream_data')).stream_id, 1)
  c.close()
})

test('hello timeout: no hello in time closes with 1008, other frames do not count', async (t) => {
  const gw = await startGateway(t, { hello_timeout: '300ms' })
  const c = await WsClient.connect(gw.wsUrl)
  c.send({ type: 'ping' })
  t.match(await c.expect('error'), { code: 'NOT_AUTHENTICATED' })
  const closed = await c.closed
  t.equal(closed.code, 1008)
  t.equal(closed.reason, 'hello_timeout')
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'the connection to go')

  // A session that said hello in time outlives the timeout.
  const d = await session(gw)
  await new Promise(resolve => setTimeout(resolve, 400))
  d.send({ type: 'ping', n: 1 })
  t.match(await d.expect('pong'), { n: 1 })
  d.close()
})

test('backend: allowed, refused and the request it gets', async (t) => {
  const stub = await startBackendStub(t)
  const gw = await startGateway(t, { backend_base_url: stub.url, devices: [] })
  const a = await WsClient.connect(gw.wsUrl)
  const auth = await a.hello('allow-1', GOOD_TOKEN)
  t.match(auth, { type: 'auth_result', allowed: true, user_id: 'user-of-allow-1', subscription_status: 'active' })
  t.match(auth.session_id, UUID)
  t.same(stub.requests[0], { device_id: 'allow-1', token: GOOD_TOKEN })

  const b = await WsClient.connect(gw.wsUrl)
  t.same(await b.hello('deny-1', GOOD_TOKEN), { type: 'auth_result', allowed: false, reason: 'subscription_expired' })
  t.equal((await b.closed).code, 1008)

  const c = await WsClient.connect(gw.wsUrl)
  t.same(await c.hello('allow-2', 'bad'), { type: 'auth_result', allowed: false, reason: 'invalid_token' })
  t.equal((await c.closed).code, 1008)

  t.equal(await metricValue(gw, 'httvps_gateway_handshakes_total', { result: 'accepted' }), 1)
  t.equal(await metricValue(gw, 'httvps_gateway_handshakes_total', { result: 'rejected' }), 2)
  t.equal(await metricValue(gw, 'httvps_gateway_handshakes_total', { result: 'error' }), 0)
  a.close()
})

test('backend: failures are allowed:false with a backend_* reason, counted, and close with 1008', async (t) => {
  const stub = await startBackendStub(t)
  const gw = await startGateway(t, { backend_base_url: stub.url, backend_timeout: '300ms', devices: [] })
  const cases: Array<[string, string]> = [
    ['fail-1', 'backend_error'],
    ['garbage-1', 'backend_error'],
    ['badshape-1', 'backend_error'],
    ['nouser-1', 'backend_error'],
    ['slow-1', 'backend_timeout']
  ]
  for (const [device, reason] of cases) {
    const c = await WsClient.connect(gw.wsUrl)
    t.same(await c.hello(device, GOOD_TOKEN), { type: 'auth_result', allowed: false, reason }, device)
    t.equal((await c.closed).code, 1008)
  }
  t.equal(await metricValue(gw, 'httvps_gateway_backend_errors_total', { reason: 'backend_error' }), 4)
  t.equal(await metricValue(gw, 'httvps_gateway_backend_errors_total', { reason: 'backend_timeout' }), 1)
  t.equal(await metricValue(gw, 'httvps_gateway_handshakes_total', { result: 'error' }), 5)

  // Still healthy for everyone else.
  const ok = await WsClient.connect(gw.wsUrl)
  t.match(await ok.hello('allow-3', GOOD_TOKEN), { allowed: true })
  ok.close()
})

test('backend down: backend_unavailable', async (t) => {
  const port = await closedPort()
  const gw = await startGateway(t, { backend_base_url: `http://127.0.0.1:${port}`, devices: [] })
  const c = await WsClient.connect(gw.wsUrl)
  t.same(await c.hello('allow-1', GOOD_TOKEN), { type: 'auth_result', allowed: false, reason: 'backend_unavailable' })
  t.equal((await c.closed).code, 1008)
  t.equal(await metricValue(gw, 'httvps_gateway_backend_errors_total', { reason: 'backend_unavailable' }), 1)
})

test('backend: a base URL with a path, and one kept-alive connection for many checks', async (t) => {
  const stub = await startBackendStub(t, '/auth-service')
  const gw = await startGateway(t, { backend_base_url: `${stub.url}/`, devices: [] })
  for (let i = 0; i < 5; i++) {
    const c = await WsClient.connect(gw.wsUrl)
    t.match(await c.hello(`allow-${i}`, GOOD_TOKEN), { allowed: true })
    c.close()
    await c.closed
  }
  t.equal(stub.requests.length, 5)
  t.equal(stub.connections, 1, 'the pool reused its connection')
})

test('backend: a slow check does not hold up other sessions; frames meanwhile are NOT_AUTHENTICATED', async (t) => {
  const stub = await startBackendStub(t)
  const gw = await startGateway(t, { backend_base_url: stub.url, backend_timeout: '5s', devices: [] })
  const slow = await WsClient.connect(gw.wsUrl)
  slow.send({ type: 'hello', device_id: 'slow-2', token: GOOD_TOKEN })
  await waitFor(() => stub.requests.length === 1, 'the backend to get the check')
  slow.openStream(1)
  t.match(await slow.expect('error'), { code: 'NOT_AUTHENTICATED', stream_id: 1 })
  slow.send({ type: 'hello', device_id: 'allow-9', token: GOOD_TOKEN })
  t.match(await slow.expect('error'), { code: 'NOT_AUTHENTICATED', message: /already/ })

  const fast = await WsClient.connect(gw.wsUrl)
  t.match(await fast.hello('allow-4', GOOD_TOKEN), { allowed: true })
  fast.openStream('e')
  fast.write('e', 'works')
  t.equal((await fast.expect('stream_data')).stream_id, 'e')
  fast.close()

  // The slow client leaves before its answer: nothing of it remains.
  slow.close()
  await slow.closed
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'connections to go')
  t.same(gw.app.sessions.stats(), { connections: 0, sessions: 0, streams: 0 })
})

test('config/example-config.yaml: its demo device can say hello', async (t) => {
  const file = fileURLToPath(new URL('../../../config/example-config.yaml', import.meta.url))
  const config = loadConfig({ env: {}, file })
  t.equal(config.backend, undefined)
  const gw = await startGateway(t, { devices: config.devices })
  const c = await WsClient.connect(gw.wsUrl)
  t.match(await c.hello('demo-device', 'demo-token'), { allowed: true, user_id: 'demo-user', subscription_status: 'active' })
  c.close()
})
