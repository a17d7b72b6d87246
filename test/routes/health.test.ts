import { test } from 'tap'
import { request } from 'undici'
import { buildGateway, startHttpUpstream } from '../helper.js'

test('GET /health is healthy with nothing configured', async (t) => {
  const gw = await buildGateway(t)
  const res = await request(`${gw.url}/health`)
  t.equal(res.statusCode, 200)
  t.same(await res.body.json(), { status: 'healthy', services: {} })
})

test('GET /health lists every dependency and answers 503 when one is down', async (t) => {
  const gw = await buildGateway(t)
  let up = true
  gw.app.health.add('alpha', async () => true)
  gw.app.health.add('beta', async () => up)
  gw.app.health.add('broken', async () => { throw new Error('boom') })
  const res = await request(`${gw.url}/health`)
  t.equal(res.statusCode, 503)
  t.same(await res.body.json(), { status: 'unhealthy', services: { alpha: 'up', beta: 'up', broken: 'down' } })
  up = false
  const again = await gw.app.health.check()
  t.same(again, { alpha: 'up', beta: 'down', broken: 'down' })
  t.throws(() => gw.app.health.add('alpha', async () => true), /already registered/)
})

test('a health check that hangs is reported down, not waited on forever', async (t) => {
  const gw = await buildGateway(t)
  gw.app.health.add('hangs', async () => await new Promise<boolean>(() => {}))
  t.same(await gw.app.health.check(50), { hangs: 'down' })
})

test('/metrics serves Prometheus text with per-route request durations when enabled', async (t) => {
  const up = await startHttpUpstream(t, (_req, res) => { res.end('ok') })
  const gw = await buildGateway(t, { metrics_enabled: true, routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })
  await (await request(`${gw.url}/api/x`)).body.text()
  await (await request(`${gw.url}/health`)).body.text()
  const res = await request(`${gw.url}/metrics`)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/plain/)
  const text = await res.body.text()
  t.match(text, /http_request_duration_seconds_bucket\{[^}]*route="\/api\/\*"/)
  t.match(text, /http_request_duration_seconds_count\{[^}]*route="\/health"/)
  t.match(text, /process_resident_memory_bytes/)
})

test('route durations are counted per route, method and status, and again after a registry reset', async (t) => {
  const up = await startHttpUpstream(t, (req, res) => { res.statusCode = req.url === '/missing' ? 404 : 200; res.end('ok') })
  const gw = await buildGateway(t, { metrics_enabled: true, routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })
  const get = async (path: string, method = 'GET'): Promise<void> => { await (await request(`${gw.url}${path}`, { method: method as 'GET' })).body.text() }
  await get('/api/a')
  await get('/api/b')
  await get('/api/missing')
  await get('/api/a', 'DELETE')
  const count = async (labels: string): Promise<number | undefined> => {
    const text = await (await request(`${gw.url}/metrics`)).body.text()
    const line = text.split('\n').find(l => l.startsWith('http_request_duration_seconds_count{') && l.includes(labels))
    return line === undefined ? undefined : Number(line.split(' ').pop())
  }
  t.equal(await count('method="GET",route="/api/*",status_code="200"'), 2)
  t.equal(await count('method="GET",route="/api/*",status_code="404"'), 1)
  t.equal(await count('method="DELETE",route="/api/*",status_code="200"'), 1)
  gw.app.promRegistry.resetMetrics()
  t.equal(await count('method="GET",route="/api/*",status_code="200"'), undefined, 'gone after the reset')
  await get('/api/a')
  t.equal(await count('method="GET",route="/api/*",status_code="200"'), 1, 'counted again from zero')
})

test('/metrics at a custom path, and absent when disabled', async (t) => {
  const on = await buildGateway(t, { metrics_enabled: true, metrics_path: '/internal/prom' })
  t.equal((await request(`${on.url}/internal/prom`)).statusCode, 200)
  t.equal((await request(`${on.url}/metrics`)).statusCode, 404)
  const off = await buildGateway(t)
  const res = await request(`${off.url}/metrics`)
  t.equal(res.statusCode, 404)
  t.equal((await res.body.json() as { error: { code: string } }).error.code, 'NOT_FOUND')
})

test('a burst of /health requests shares one round of checks', async (t) => {
  let calls = 0
  const gw = await buildGateway(t, {}, (app) => {
    app.health.add('counted', async () => { calls++; return true })
  })
  const all = await Promise.all(Array.from({ length: 50 }, async () => await request(`${gw.url}/health`)))
  for (const res of all) {
    t.equal(res.statusCode, 200)
    await res.body.text()
  }
  t.equal(calls, 1, 'the dependency was asked once')
})
