import { test } from 'tap'
import { GOOD_TOKEN, startBackendStub } from '../backend-stub.js'
import { DEVICE, session, startGateway, startTcpServer, closedPort, waitFor, WsClient } from './helpers.js'

const METRICS = [
  'httvps_gateway_handshakes_total',
  'httvps_gateway_handshake_duration_seconds',
  'httvps_gateway_backend_errors_total',
  'httvps_gateway_active_sessions',
  'httvps_gateway_active_streams',
  'httvps_gateway_bytes_in_total',
  'httvps_gateway_bytes_out_total',
  'httvps_gateway_stream_buffer_overflows_total',
  'httvps_gateway_bad_frames_total',
  'httvps_gateway_error_frames_total'
]

test('session metrics are in promRegistry and at /metrics', async (t) => {
  const gw = await startGateway(t, { metrics_enabled: true })
  const c = await session(gw)
  c.openStream(1)
  c.write(1, Buffer.alloc(1000, 7))
  await c.read(1, 1000)
  c.send('not json')
  await c.expect('error')
  await c.sync()

  const text = await gw.app.promRegistry.metrics()
  for (const name of METRICS) t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name)
  t.match(text, /httvps_gateway_handshakes_total\{result="accepted"\} 1/)
  t.match(text, /httvps_gateway_handshakes_total\{result="rejected"\} 0/)
  t.match(text, /httvps_gateway_handshake_duration_seconds_count 1/)
  t.match(text, /httvps_gateway_active_sessions 1/)
  t.match(text, /httvps_gateway_active_streams 1/)
  t.match(text, /httvps_gateway_bytes_in_total 1000/)
  t.match(text, /httvps_gateway_bytes_out_total 1000/)
  t.match(text, /httvps_gateway_bad_frames_total 1/)
  t.match(text, /httvps_gateway_error_frames_total\{code="BAD_FRAME"\} 1/)

  const res = await fetch(`${gw.url}/metrics`)
  t.equal(res.status, 200)
  const served = await res.text()
  for (const name of METRICS) t.match(served, name)
  c.close()
})

test('tokens never reach the logs; session events carry device_id and session_id', async (t) => {
  const port = await closedPort()
  const tcpRefused = `127.0.0.1:${port}`
  const gw = await startGateway(t, { tcp_allow: [tcpRefused] }, { logs: true })
  const c = await WsClient.connect(gw.wsUrl)
  const auth = await c.hello()
  t.equal(auth.allowed, true)
  c.openStream('r', 'tcp', tcpRefused)
  await c.expect('error')
  await c.expect('stream_close')
  c.send({ type: 'hello', device_id: DEVICE.device_id, token: DEVICE.token })
  await c.expect('error')
  c.close()
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'the session to end')

  const refused = await WsClient.connect(gw.wsUrl)
  await refused.hello(DEVICE.device_id, 'wrong-token-value-42')
  await refused.closed
  // A bad frame carrying a token does not log it either.
  const bad = await WsClient.connect(gw.wsUrl)
  bad.send({ type: 'hello', device_id: 'd', token: 'bad-frame-token-77', extra: true })
  await bad.expect('error')
  bad.close()
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'connections to end')

  const all = gw.logs.join('')
  t.ok(gw.logs.length > 0, 'logs were captured')
  for (const token of [DEVICE.token, 'wrong-token-value-42', 'bad-frame-token-77']) {
    t.notOk(all.includes(token), `${token} is not in the logs`)
  }
  const events = gw.logs.map(l => JSON.parse(l))
  const started = events.find(e => e.event === 'session_started')
  t.match(started, { device_id: DEVICE.device_id, session_id: auth.session_id, user_id: DEVICE.user_id })
  t.match(events.find(e => e.event === 'stream_error'), { device_id: DEVICE.device_id, session_id: auth.session_id, stream_id: 'r', code: 'UPSTREAM_ERROR' })
  t.match(events.find(e => e.event === 'session_ended'), { device_id: DEVICE.device_id, session_id: auth.session_id, closed_by: 'client' })
  t.match(events.find(e => e.event === 'handshake_rejected'), { device_id: DEVICE.device_id, reason: 'invalid_credentials' })
})

test('tokens never reach the logs when the backend fails either', async (t) => {
  const stub = await startBackendStub(t)
  const gw = await startGateway(t, { backend_base_url: stub.url, backend_timeout: '300ms', devices: [] }, { logs: true })
  for (const device of ['fail-1', 'garbage-1', 'slow-1', 'allow-1']) {
    const c = await WsClient.connect(gw.wsUrl)
    await c.hello(device, GOOD_TOKEN)
    c.close()
    await c.closed
  }
  await stub.close()
  const c = await WsClient.connect(gw.wsUrl)
  t.match(await c.hello('allow-2', GOOD_TOKEN), { reason: 'backend_unavailable' })
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'connections to end')
  t.notOk(gw.logs.join('').includes(GOOD_TOKEN), 'the token is not in the logs')
  t.ok(gw.logs.some(l => l.includes('"backend_error"') && l.includes('fail-1')), 'backend failures are logged with the device')
})

test('/health lists the backend up, then down', async (t) => {
  const stub = await startBackendStub(t)
  const gw = await startGateway(t, { backend_base_url: stub.url, devices: [] })
  const up = await fetch(`${gw.url}/health`)
  t.equal(up.status, 200)
  t.match(await up.json(), { status: 'healthy', services: { backend: 'up' } })

  await stub.close()
  // /health shares one round of checks for a second, so the change shows up within it.
  let down = await fetch(`${gw.url}/health`)
  while (down.status !== 503) {
    await new Promise(resolve => setTimeout(resolve, 100))
    down = await fetch(`${gw.url}/health`)
  }
  t.equal(down.status, 503)
  t.match(await down.json(), { status: 'unhealthy', services: { backend: 'down' } })
})

test('/health has no backend entry with the embedded device list', async (t) => {
  const gw = await startGateway(t)
  const res = await fetch(`${gw.url}/health`)
  const body = await res.json() as { services: Record<string, string> }
  t.notOk('backend' in body.services)
})

test('a plain GET /ws is not an upgrade: 426, and no session', async (t) => {
  const tcp = await startTcpServer(t)
  const gw = await startGateway(t, { tcp_allow: [tcp.target] })
  const res = await fetch(`${gw.url}/ws`)
  t.equal(res.status, 426)
  t.same(gw.app.sessions.stats(), { connections: 0, sessions: 0, streams: 0 })
})
