import { test } from 'tap'
import { request } from 'undici'
import { buildGateway, startHttpUpstream, startWsUpstream, TestClient, upgradeStatus } from '../helper.js'

test('top-level rate_limit: 429 RATE_LIMITED with retry-after once the window is used up', async (t) => {
  const up = await startHttpUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await buildGateway(t, { rate_limit: { max: 3, window: '1m' }, routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })
  for (let i = 0; i < 3; i++) {
    const res = await request(`${gw.url}/api/x`)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-ratelimit-limit'], '3')
    t.equal(res.headers['x-ratelimit-remaining'], String(2 - i))
    t.ok(Number(res.headers['x-ratelimit-reset']) > 0, 'x-ratelimit-reset is set')
    await res.body.text()
  }
  const limited = await request(`${gw.url}/api/x`)
  t.equal(limited.statusCode, 429)
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after is set')
  const body = await limited.body.json() as { error: { code: string, message: string } }
  t.equal(body.error.code, 'RATE_LIMITED')
  t.match(body.error.message, /Rate limit exceeded/)
  // The gateway's own endpoints are not limited.
  t.equal((await request(`${gw.url}/health`)).statusCode, 200)
})

test('each route has its own budget; /auth/token and /auth/refresh share one', async (t) => {
  const up = await startHttpUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await buildGateway(t, {
    rate_limit: { max: 2, window: '1m' },
    jwt_secret: 'rate-limit-test-secret-0123456789abcdef',
    routes: [{ prefix: '/a', upstream: up.url, auth: 'none' }, { prefix: '/b', upstream: up.url, auth: 'none' }]
  })
  const status = async (path: string, method = 'GET'): Promise<number> => {
    const res = await request(`${gw.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined })
    await res.body.dump()
    return res.statusCode
  }
  t.same([await status('/a/1'), await status('/a/2'), await status('/a/3')], [200, 200, 429])
  t.same([await status('/b/1'), await status('/b/2'), await status('/b/3')], [200, 200, 429], '/b was not charged for /a')
  const token = await status('/auth/token', 'POST')
  const refresh = await status('/auth/refresh', 'POST')
  t.not(token, 429)
  t.not(refresh, 429)
  t.equal(await status('/auth/token', 'POST'), 429, 'the refresh call used the shared /auth budget')
})

test('per-route override and opt-out', async (t) => {
  const up = await startHttpUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await buildGateway(t, {
    rate_limit: { max: 100, window: '1m' },
    routes: [
      { prefix: '/tight', upstream: up.url, auth: 'none', rate_limit: { max: 1, window: '1m' } },
      { prefix: '/free', upstream: up.url, auth: 'none', rate_limit: false }
    ]
  })
  t.equal((await request(`${gw.url}/tight/a`)).statusCode, 200)
  t.equal((await request(`${gw.url}/tight/a`)).statusCode, 429)
  for (let i = 0; i < 5; i++) {
    const res = await request(`${gw.url}/free/a`)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-ratelimit-limit'], undefined)
    await res.body.text()
  }
})

test('no rate_limit configured: no limit', async (t) => {
  const up = await startHttpUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })
  for (let i = 0; i < 20; i++) {
    const res = await request(`${gw.url}/api/x`)
    t.equal(res.statusCode, 200)
    await res.body.text()
  }
})

test('WebSocket upgrades count against the limit', async (t) => {
  const up = await startWsUpstream(t)
  const gw = await buildGateway(t, { routes: [{ prefix: '/live', upstream: up.url, websocket: true, auth: 'none', rate_limit: { max: 2, window: '1m' } }] })
  const a = new TestClient(`${gw.wsUrl}/live`)
  await a.open()
  // An HTTP request on the same route uses the same budget.
  t.equal((await request(`${gw.url}/live/x`)).statusCode, 426)
  t.equal(await upgradeStatus(`${gw.wsUrl}/live`), 429)
  a.close()
})
