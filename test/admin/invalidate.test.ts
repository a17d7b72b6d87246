import { test } from 'tap'
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { buildGateway, startHttpUpstream, startWsUpstream, TestClient, upgradeStatus, waitFor } from '../helper.js'
import { call, errorCode, type Test } from '../auth/support.js'

const ADMIN = 'admin-token-0123456789abcdef'
const API_KEY = 'ak_test_0123456789'
const auth = { authorization: `Bearer ${ADMIN}` }

interface Backend { url: string, calls: Array<{ device_id: string, token: string }>, allowed: Map<string, string>, failing: boolean }

/** A validate-device backend on loopback: allows the devices in `allowed` (device_id → user_id) with token `t-<device>`. */
async function startBackend (t: Test): Promise<Backend> {
  const calls: Backend['calls'] = []
  const allowed = new Map<string, string>()
  const backend: Backend = { url: '', calls, allowed, failing: false }
  const readBody = async (req: IncomingMessage): Promise<string> => {
    let text = ''
    for await (const chunk of req) text += String(chunk)
    return text
  }
  const { url } = await startHttpUpstream(t, (req, res) => {
    if (req.method !== 'POST' || req.url !== '/api/v1/auth/validate-device') {
      res.statusCode = 404
      res.end()
      return
    }
    readBody(req).then((text) => {
      const body = JSON.parse(text) as { device_id: string, token: string }
      calls.push(body)
      if (backend.failing) {
        res.statusCode = 500
        res.end()
        return
      }
      const user = allowed.get(body.device_id)
      const ok = user !== undefined && body.token === `t-${body.device_id}`
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(ok ? { allowed: true, user_id: user, subscription_status: 'active' } : { allowed: false, reason: 'device_revoked' }))
    }, (err: Error) => { res.destroy(err) })
  })
  backend.url = url
  return backend
}

async function setup (t: Test): Promise<{ backend: Backend, gw: Awaited<ReturnType<typeof buildGateway>> }> {
  const backend = await startBackend(t)
  const up = await startWsUpstream(t)
  const gw = await buildGateway(t, {
    admin_token: ADMIN,
    backend_base_url: backend.url,
    metrics_enabled: true,
    api_keys: [{ key_sha256: createHash('sha256').update(API_KEY).digest('hex'), user_id: 'user-k' }],
    routes: [{ prefix: '/live', upstream: up.url, websocket: true }]
  })
  return { backend, gw }
}

test('device checks are cached; invalidate re-checks and stops a revoked device\'s live connection', async (t) => {
  const { backend, gw } = await setup(t)
  backend.allowed.set('dev-a', 'user-a')
  backend.allowed.set('dev-b', 'user-b')

  // Logins arriving together share one backend call, later ones hit the cache.
  const burst = await Promise.all(Array.from({ length: 5 }, async () => await call('POST', `${gw.url}/auth/token`, { device_id: 'dev-a', token: 't-dev-a' })))
  t.same(burst.map(r => r.status), [200, 200, 200, 200, 200])
  const pairA = burst[0].body
  t.equal((await call('POST', `${gw.url}/auth/token`, { device_id: 'dev-a', token: 't-dev-a' })).status, 200)
  t.equal(backend.calls.length, 1, 'one backend call for six logins')
  const pairB = (await call('POST', `${gw.url}/auth/token`, { device_id: 'dev-b', token: 't-dev-b' })).body
  t.equal(backend.calls.length, 2)
  const metrics = await gw.app.promRegistry.metrics()
  t.match(metrics, /httvps_gateway_auth_cache_hits_total [1-5]\n/)
  t.match(metrics, /httvps_gateway_auth_cache_misses_total [2-6]\n/)

  t.equal(await upgradeStatus(`${gw.wsUrl}/live`), 401, 'an upgrade without credentials is refused')
  t.equal(await upgradeStatus(`${gw.wsUrl}/live`, { authorization: 'Bearer nope' }), 401)

  const a = new TestClient(`${gw.wsUrl}/live`, { headers: { authorization: `Bearer ${pairA.access_token as string}` } })
  const b = new TestClient(`${gw.wsUrl}/live`, { headers: { authorization: `Bearer ${pairB.access_token as string}` } })
  const k = new TestClient(`${gw.wsUrl}/live`, { headers: { 'x-api-key': API_KEY } })
  await Promise.all([a.open(), b.open(), k.open()])
  await waitFor(() => gw.app.connections.size === 3, 'three connections')
  const listed = (await call('GET', `${gw.url}/admin/connections?device_id=dev-a`, undefined, auth)).body.connections
  t.match(listed, [{ user_id: 'user-a', device_id: 'dev-a', method: 'device', state: 'running' }])

  // Still allowed: the re-check asks the backend afresh and the connection stays.
  const kept = await call('POST', `${gw.url}/admin/auth/invalidate`, { device_id: 'dev-a' }, auth)
  t.same(kept.body, { cache_entries_dropped: 1, connections_checked: 1, connections_stopped: 0, refresh_required: 0, check_failed: 0 })
  t.equal(backend.calls.length, 3)

  backend.allowed.delete('dev-a')
  const revoked = await call('POST', `${gw.url}/admin/auth/invalidate`, { device_id: 'dev-a' }, auth)
  t.equal(revoked.status, 200)
  t.match(revoked.body, { connections_checked: 1, connections_stopped: 1 })
  t.same(await a.closed, { code: 1008, reason: 'authorization_revoked' })
  await waitFor(() => gw.app.connections.size === 2, 'revoked connection removed')
  t.same(gw.app.connections.find({ device_id: 'dev-b' }).map(c => c.state), ['running'], 'other devices are untouched')

  const again = await call('POST', `${gw.url}/auth/token`, { device_id: 'dev-a', token: 't-dev-a' })
  t.equal(errorCode(again), 'UNAUTHORIZED', 'no stale cache entry lets it back in')
  const refreshed = await call('POST', `${gw.url}/auth/refresh`, { refresh_token: pairA.refresh_token })
  t.equal(refreshed.status, 401, 'its refresh token is refused by the re-check')
  t.equal(errorCode(refreshed), 'UNAUTHORIZED')
  t.match(await gw.app.promRegistry.metrics(), /httvps_gateway_token_refresh_total\{result="refused"\} 1/)
  t.equal((await call('POST', `${gw.url}/auth/refresh`, { refresh_token: pairB.refresh_token })).status, 200)

  // API keys are re-checked by existence: still configured, so it stays.
  const keyUser = await call('POST', `${gw.url}/admin/auth/invalidate`, { user_id: 'user-k' }, auth)
  t.match(keyUser.body, { connections_checked: 1, connections_stopped: 0 })

  b.close()
  k.close()
  await Promise.all([b.closed, k.closed])
  await waitFor(() => gw.app.connections.size === 0, 'registry empty')
})

test('a backend that fails gives 503 and keeps live connections on re-check', async (t) => {
  const { backend, gw } = await setup(t)
  backend.allowed.set('dev-a', 'user-a')
  const pair = (await call('POST', `${gw.url}/auth/token`, { device_id: 'dev-a', token: 't-dev-a' })).body
  const client = new TestClient(`${gw.wsUrl}/live`, { headers: { authorization: `Bearer ${pair.access_token as string}` } })
  await client.open()
  await waitFor(() => gw.app.connections.size === 1, 'connected')

  backend.failing = true
  const res = await call('POST', `${gw.url}/admin/auth/invalidate`, { user_id: 'user-a' }, auth)
  t.match(res.body, { connections_checked: 1, connections_stopped: 0, check_failed: 1 })
  const token = await call('POST', `${gw.url}/auth/token`, { device_id: 'dev-a', token: 't-dev-a' })
  t.equal(token.status, 503)
  t.equal(errorCode(token), 'AUTH_UNAVAILABLE')
  const refreshed = await call('POST', `${gw.url}/auth/refresh`, { refresh_token: pair.refresh_token })
  t.equal(errorCode(refreshed), 'AUTH_UNAVAILABLE')
  backend.failing = false
  t.equal((await call('POST', `${gw.url}/auth/refresh`, { refresh_token: pair.refresh_token })).status, 200, 'the refresh token was not spent by the failed attempt')
  client.close()
  await waitFor(() => gw.app.connections.size === 0, 'registry empty')
})
