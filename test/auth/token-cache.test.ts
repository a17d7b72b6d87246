import { test } from 'tap'
import { request } from 'undici'
import { buildGateway, startHttpUpstream, waitFor } from '../helper.js'

async function post (url: string, body: object): Promise<{ status: number, body: any }> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.statusCode, body: await res.body.json() }
}

/** A gateway with one device and one route whose upstream records the user id it is sent. */
async function setup (t: { teardown: (fn: () => unknown) => void }, ttl: string): Promise<{ seen: Array<string | undefined>, url: string, get: (token: string) => Promise<{ status: number, code?: string }> }> {
  const seen: Array<string | undefined> = []
  const up = await startHttpUpstream(t, (req, res) => { seen.push(req.headers['x-user-id'] as string | undefined); res.end('ok') })
  const gw = await buildGateway(t, {
    access_token_ttl: ttl,
    devices: [{ device_id: 'd-1', token: 't-1', user_id: 'u-1' }],
    routes: [{ prefix: '/api', upstream: up.url }]
  })
  const get = async (token: string): Promise<{ status: number, code?: string }> => {
    const res = await request(`${gw.url}/api/x`, { headers: { authorization: `Bearer ${token}` } })
    const text = await res.body.text()
    return { status: res.statusCode, code: res.statusCode === 200 ? undefined : JSON.parse(text).error.code }
  }
  return { seen, url: gw.url, get }
}

// A long lifetime here: with a short one, a slow machine saw the token expire before the
// revocation was checked (TOKEN_EXPIRED instead of UNAUTHORIZED).
test('a verified access token is remembered, but a revocation applies at once', async (t) => {
  const { seen, url, get } = await setup(t, '1h')

  // Same token three times: same identity each time.
  const first = await post(`${url}/auth/token`, { device_id: 'd-1', token: 't-1' })
  for (let i = 0; i < 3; i++) t.same(await get(first.body.access_token), { status: 200, code: undefined })
  t.same(seen, ['u-1', 'u-1', 'u-1'])

  // Revoked family (a refresh token used twice): the remembered token is refused at once.
  const second = await post(`${url}/auth/token`, { device_id: 'd-1', token: 't-1' })
  t.equal((await get(second.body.access_token)).status, 200)
  t.equal((await post(`${url}/auth/refresh`, { refresh_token: second.body.refresh_token })).status, 200)
  t.equal((await post(`${url}/auth/refresh`, { refresh_token: second.body.refresh_token })).status, 401)
  t.same(await get(second.body.access_token), { status: 401, code: 'UNAUTHORIZED' })
})

test('a remembered access token stops working when its time is up', async (t) => {
  const { get, url } = await setup(t, '1s')
  const token = (await post(`${url}/auth/token`, { device_id: 'd-1', token: 't-1' })).body.access_token
  t.equal((await get(token)).status, 200) // now remembered
  await waitFor(async () => (await get(token)).status === 401, 'the token to expire')
  t.same(await get(token), { status: 401, code: 'TOKEN_EXPIRED' })
})
