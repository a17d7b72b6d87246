import { test } from 'tap'
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { buildGateway, startHttpUpstream } from '../helper.js'
import { hmacToken, now, rsaKeys, unsignedToken } from './jwt-tools.js'
import { call, errorCode, type Test } from './support.js'

const JWT_SECRET = 'gateway-secret-0123456789abcdef0123'
const API_KEY = 'ak_live_0123456789'
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

async function gateway (t: Test, overrides: Record<string, unknown> = {}): Promise<{ url: string, seen: IncomingHttpHeaders[], metrics: () => Promise<string> }> {
  const seen: IncomingHttpHeaders[] = []
  const up = await startHttpUpstream(t, (req, res) => { seen.push(req.headers); res.end('ok') })
  const gw = await buildGateway(t, {
    jwt_secret: JWT_SECRET,
    routes: [{ prefix: '/api', upstream: up.url }],
    devices: [{ device_id: 'dev-1', token: 'device-token-1', user_id: 'user-1', subscription_status: 'active' }],
    api_keys: [{ key_sha256: sha256(API_KEY), user_id: 'user-2', scopes: ['read'] }],
    ...overrides
  })
  return { url: gw.url, seen, metrics: async () => await gw.app.promRegistry.metrics() }
}

test('POST /auth/token: device and api_key credentials give a token pair; bad ones do not', async (t) => {
  const { url } = await gateway(t)
  const device = await call('POST', `${url}/auth/token`, { device_id: 'dev-1', token: 'device-token-1' })
  t.equal(device.status, 200)
  t.match(device.body, { access_token: String, refresh_token: String, expires_in: 900, token_type: 'Bearer' })
  const key = await call('POST', `${url}/auth/token`, { api_key: API_KEY })
  t.equal(key.status, 200)

  const wrong = await call('POST', `${url}/auth/token`, { device_id: 'dev-1', token: 'nope' })
  t.equal(wrong.status, 401)
  t.equal(errorCode(wrong), 'UNAUTHORIZED')
  t.equal(errorCode(await call('POST', `${url}/auth/token`, { api_key: 'nope' })), 'UNAUTHORIZED')
  t.equal(errorCode(await call('POST', `${url}/auth/token`, { device_id: 'dev-1', token: 'device-token-1', api_key: API_KEY })), 'BAD_REQUEST')
  t.equal((await call('POST', `${url}/auth/token`, {})).status, 400)
  t.equal(errorCode(await call('POST', `${url}/auth/token`, { jwt: 'x.y.z' })), 'UNAUTHORIZED', 'no external issuer configured')
})

test('a gateway access token, an API key and nothing on an auth: required route', async (t) => {
  const { url, seen } = await gateway(t)
  const pair = (await call('POST', `${url}/auth/token`, { device_id: 'dev-1', token: 'device-token-1' })).body
  const forged = { 'x-user-id': 'admin', 'x-device-id': 'forged', 'x-auth-method': 'forged' }

  const withToken = await call('GET', `${url}/api/a`, undefined, { authorization: `Bearer ${pair.access_token as string}`, ...forged })
  t.equal(withToken.status, 200)
  t.match(seen[0], { 'x-user-id': 'user-1', 'x-device-id': 'dev-1', 'x-auth-method': 'device' })
  t.equal(seen[0].authorization, undefined)

  const withKey = await call('GET', `${url}/api/b`, undefined, { 'x-api-key': API_KEY, ...forged })
  t.equal(withKey.status, 200)
  t.match(seen[1], { 'x-user-id': 'user-2', 'x-auth-method': 'api_key' })
  t.equal(seen[1]['x-device-id'], undefined, 'a client-sent x-device-id is dropped')
  t.equal(seen[1]['x-api-key'], undefined)

  const none = await call('GET', `${url}/api/c`, undefined, forged)
  t.equal(none.status, 401)
  t.equal(errorCode(none), 'UNAUTHORIZED')
  t.equal(errorCode(await call('GET', `${url}/api/c`, undefined, { 'x-api-key': 'wrong' })), 'UNAUTHORIZED')
  t.equal(errorCode(await call('GET', `${url}/api/c`, undefined, { authorization: 'Basic dXNlcjpwYXNz' })), 'UNAUTHORIZED')
  t.equal(seen.length, 2)

  // A Bearer header whose token has whitespace inside is no bearer token: the API key beside it is used.
  const tabbed = await call('GET', `${url}/api/d`, undefined, { authorization: `Bearer ${pair.access_token as string}\tx`, 'x-api-key': API_KEY })
  t.equal(tabbed.status, 200)
  t.match(seen[2], { 'x-user-id': 'user-2', 'x-auth-method': 'api_key' })
  t.equal((await call('GET', `${url}/api/d`, undefined, { authorization: `bearer   ${pair.access_token as string}  ` })).status, 200, 'scheme in any case, spaces around the token')
  t.match(seen[3], { 'x-user-id': 'user-1', 'x-auth-method': 'device' })
})

test('gateway access tokens: expired, forged, unsigned', async (t) => {
  const { url, seen } = await gateway(t)
  const base = { iss: 'httvps-gateway', aud: 'httvps-gateway', sub: 'user-1', mth: 'device', scp: [], sid: 'abc' }
  const get = async (token: string): Promise<string | undefined> => errorCode(await call('GET', `${url}/api/x`, undefined, { authorization: `Bearer ${token}` }))

  t.equal(await get(hmacToken(JWT_SECRET, { ...base, iat: now() - 3600, exp: now() - 60 })), 'TOKEN_EXPIRED')
  t.equal(await get(hmacToken('not-the-gateway-secret-0123456789', { ...base, exp: now() + 60 })), 'UNAUTHORIZED')
  t.equal(await get(unsignedToken({ ...base, exp: now() + 60 })), 'UNAUTHORIZED')
  t.equal(await get(hmacToken(JWT_SECRET, { ...base, exp: now() + 60 }, 'HS512')), 'UNAUTHORIZED', 'only the configured algorithm')
  t.equal(await get(hmacToken(JWT_SECRET, { ...base, mth: 'root', exp: now() + 60 })), 'UNAUTHORIZED', 'unknown method')
  t.equal(await get(hmacToken(JWT_SECRET, { ...base, exp: now() + 60 })), undefined, 'a token signed with the secret is accepted')
  t.equal(seen.length, 1)
})

test('refresh rotation: each refresh token works once; a reused one revokes the family', async (t) => {
  const { url, metrics } = await gateway(t)
  const first = (await call('POST', `${url}/auth/token`, { device_id: 'dev-1', token: 'device-token-1' })).body
  const second = await call('POST', `${url}/auth/refresh`, { refresh_token: first.refresh_token })
  t.equal(second.status, 200)
  t.not(second.body.refresh_token, first.refresh_token)
  const third = await call('POST', `${url}/auth/refresh`, { refresh_token: second.body.refresh_token })
  t.equal(third.status, 200)
  t.equal((await call('GET', `${url}/api/x`, undefined, { authorization: `Bearer ${third.body.access_token as string}` })).status, 200)

  // The first token again: theft is assumed, the whole login is revoked.
  const reused = await call('POST', `${url}/auth/refresh`, { refresh_token: first.refresh_token })
  t.equal(reused.status, 401)
  t.equal(errorCode(reused), 'INVALID_REFRESH_TOKEN')
  t.equal(errorCode(await call('POST', `${url}/auth/refresh`, { refresh_token: third.body.refresh_token })), 'INVALID_REFRESH_TOKEN', 'the newest token is revoked too')
  t.equal(errorCode(await call('GET', `${url}/api/x`, undefined, { authorization: `Bearer ${third.body.access_token as string}` })), 'UNAUTHORIZED', 'and its access tokens')

  t.equal(errorCode(await call('POST', `${url}/auth/refresh`, { refresh_token: 'garbage' })), 'INVALID_REFRESH_TOKEN')
  t.equal((await call('POST', `${url}/auth/refresh`, {})).status, 400)

  // Another login of the same device is not affected.
  const other = (await call('POST', `${url}/auth/token`, { device_id: 'dev-1', token: 'device-token-1' })).body
  t.equal((await call('POST', `${url}/auth/refresh`, { refresh_token: other.refresh_token })).status, 200)

  const text = await metrics()
  t.match(text, /httvps_gateway_token_refresh_total\{result="ok"\} 3/)
  t.match(text, /httvps_gateway_token_refresh_total\{result="reused"\} 1/)
  t.match(text, /httvps_gateway_token_refresh_total\{result="invalid"\} 2/)
  t.match(text, /httvps_gateway_auth_cache_hits_total \d+/)
})

test('api_key logins refresh while the key is configured', async (t) => {
  const { url } = await gateway(t)
  const pair = (await call('POST', `${url}/auth/token`, { api_key: API_KEY })).body
  const next = await call('POST', `${url}/auth/refresh`, { refresh_token: pair.refresh_token })
  t.equal(next.status, 200)
  t.equal((await call('GET', `${url}/api/x`, undefined, { authorization: `Bearer ${next.body.access_token as string}` })).status, 200)
})

test('a key pair signs with RS256; HS256 with the public key is refused', async (t) => {
  const keys = rsaKeys()
  const { url } = await gateway(t, { jwt_secret: undefined, jwt_private_key_path: keys.privatePath, jwt_public_key_path: keys.publicPath })
  const pair = (await call('POST', `${url}/auth/token`, { api_key: API_KEY })).body
  t.equal(JSON.parse(Buffer.from(pair.access_token.split('.')[0], 'base64url').toString()).alg, 'RS256')
  t.equal((await call('GET', `${url}/api/x`, undefined, { authorization: `Bearer ${pair.access_token as string}` })).status, 200)
  const payload = JSON.parse(Buffer.from(pair.access_token.split('.')[1], 'base64url').toString())
  const confused = hmacToken(keys.publicPem, payload)
  t.equal(errorCode(await call('GET', `${url}/api/x`, undefined, { authorization: `Bearer ${confused}` })), 'UNAUTHORIZED')
})

test('unreadable or unsuitable key files fail at start naming the key', async (t) => {
  await t.rejects(buildGateway(t, { jwt_private_key_path: '/nonexistent.pem', jwt_public_key_path: '/nonexistent.pem' }), /jwt_private_key_path \(GATEWAY_JWT_PRIVATE_KEY_PATH\): cannot read/)
  const keys = rsaKeys()
  await t.rejects(buildGateway(t, { jwt_private_key_path: keys.privatePath, jwt_public_key_path: keys.publicPath, jwt_algorithm: 'ES256' }), /does not suit ES256/)
  await t.rejects(buildGateway(t, { external_jwt: { public_key_path: keys.privatePath, algorithms: ['RS256'] } }), /external_jwt\.public_key_path: .*(holds a private key|not a PEM public key)/)
})
