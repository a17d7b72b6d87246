import { test } from 'tap'
import { request } from 'undici'
import { buildGateway, startHttpUpstream, waitFor } from '../helper.js'

async function post (url: string, body: object): Promise<{ status: number, body: any }> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.statusCode, body: await res.body.json() }
}

test('a verified access token is remembered, but revocation and expiry still apply on every request', async (t) => {
  const seen: Array<string | undefined> = []
  const up = await startHttpUpstream(t, (req, res) => { seen.push(req.headers['x-user-id'] as string | undefined); res.end('ok') })
  const gw = await buildGateway(t, {
    access_token_ttl: '1s',
    devices: [{ device_id: 'd-1', token: 't-1', user_id: 'u-1' }],
    routes: [{ prefix: '/api', upstream: up.url }]
  })
  const get = async (token: string): Promise<{ status: number, code?: string }> => {
    const res = await request(`${gw.url}/api/x`, { headers: { authorization: `Bearer ${token}` } })
    const text = await res.body.text()
    return { status: res.statusCode, code: res.statusCode === 200 ? undefined : JSON.parse(text).error.code }
  }

  // Same token three times: same identity each time.
  const first = await post(`${gw.url}/auth/token`, { device_id: 'd-1', token: 't-1' })
  for (let i = 0; i < 3; i++) t.same(await get(first.body.access_token), { status: 200, code: undefined })
  t.same(seen, ['u-1', 'u-1', 'u-1'])

  // Revoked family (a refresh token used twice): the remembered token is refused at once.
  const second = await post(`${gw.url}/auth/token`, { device_id: 'd-1', token: 't-1' })
  t.equal((await get(second.body.access_token)).status, 200)
  t.equal((await post(`${gw.url}/auth/refresh`, { refresh_token: second.body.refresh_token })).status, 200)
  t.equal((await post(`${gw.url}/auth/refresh`, { refresh_token: second.body.refresh_token })).status, 401)
  t.same(await get(second.body.access_token), { status: 401, code: 'UNAUTHORIZED' })

  // Expiry: the remembered token stops working when its time is up.
  await waitFor(async () => (await get(first.body.access_token)).status === 401, 'the first token to expire')
  t.same(await get(first.body.access_token), { status: 401, code: 'TOKEN_EXPIRED' })
})
