import { test } from 'tap'
import type { IncomingHttpHeaders } from 'node:http'
import { request } from 'undici'
import { buildGateway, startHttpUpstream } from '../helper.js'
import { claims, hmacToken, now, rsaKeys, rsaToken, segment, unsignedToken } from './jwt-tools.js'
import type { Test } from './support.js'

const SECRET = 'external-secret-0123456789abcdef!'

async function setup (t: Test, external: Record<string, unknown> | undefined): Promise<{ call: (token: string) => Promise<{ status: number, code?: string }>, seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = []
  const up = await startHttpUpstream(t, (req, res) => { seen.push(req.headers); res.end('ok') })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url }], external_jwt: external })
  const call = async (token: string): Promise<{ status: number, code?: string }> => {
    const res = await request(`${gw.url}/api/x`, { headers: { authorization: `Bearer ${token}` } })
    const text = await res.body.text()
    return { status: res.statusCode, code: res.statusCode === 200 ? undefined : JSON.parse(text).error.code }
  }
  return { call, seen }
}

test('HS256: a valid token passes with identity headers; attacks are refused', async (t) => {
  const { call, seen } = await setup(t, { secret: SECRET, algorithms: ['HS256'], issuer: 'https://idp', audience: 'gw' })
  const good = claims({ iss: 'https://idp', aud: 'gw', scope: 'read write', device_id: 'dev-9' })

  t.same(await call(hmacToken(SECRET, good)), { status: 200, code: undefined })
  t.equal(seen[0]['x-user-id'], 'user-1')
  t.equal(seen[0]['x-device-id'], 'dev-9')
  t.equal(seen[0]['x-auth-method'], 'jwt')
  t.equal(seen[0].authorization, undefined, 'the credential itself does not go upstream')

  const refused = { status: 401, code: 'UNAUTHORIZED' }
  t.same(await call(unsignedToken(good)), refused, 'alg none')
  t.same(await call(unsignedToken(good, 'NONE')), refused, 'alg NONE')
  t.same(await call(hmacToken('', good)), refused, 'signed with an empty key')
  t.same(await call(hmacToken(SECRET, good).replace(/[^.]+$/, '')), refused, 'signature stripped')
  t.same(await call(hmacToken(SECRET, good, 'HS384')), refused, 'an algorithm outside the allowlist')
  t.same(await call(hmacToken('another-secret-0123456789abcdef!!', good)), refused, 'wrong key')
  t.same(await call(hmacToken(SECRET, { ...good, iss: 'https://evil' })), refused, 'wrong issuer')
  t.same(await call(hmacToken(SECRET, { ...good, aud: 'other' })), refused, 'wrong audience')
  t.same(await call(hmacToken(SECRET, { ...good, exp: undefined })), refused, 'no exp')
  t.same(await call(hmacToken(SECRET, { ...good, sub: undefined })), refused, 'no sub')
  t.same(await call(hmacToken(SECRET, { ...good, nbf: now() + 3600 })), refused, 'not yet valid')
  t.same(await call(`${segment({ alg: 'HS256' })}.not-json.sig`), refused, 'malformed')
  t.same(await call(hmacToken(SECRET, { ...good, iat: now() - 7200, exp: now() - 3600 })), { status: 401, code: 'TOKEN_EXPIRED' }, 'expired')
  t.equal(seen.length, 1, 'no refused request reached the upstream')
})

test('RS256: HS256 signed with the public key (algorithm confusion) is refused', async (t) => {
  const keys = rsaKeys()
  const { call, seen } = await setup(t, { public_key_path: keys.publicPath, algorithms: ['RS256'] })
  const good = claims()
  t.same(await call(rsaToken(keys.privatePem, good)), { status: 200, code: undefined })
  t.equal(seen[0]['x-user-id'], 'user-1')

  const refused = { status: 401, code: 'UNAUTHORIZED' }
  t.same(await call(hmacToken(keys.publicPem, good)), refused, 'HS256 with the PEM public key as secret')
  t.same(await call(hmacToken(Buffer.from(keys.publicPem), good, 'HS256', { kid: 'x' })), refused, 'same, with a kid')
  t.same(await call(unsignedToken(good)), refused, 'alg none')
  t.same(await call(rsaToken(keys.privatePem, good).replace(/[^.]+$/, '')), refused, 'signature stripped')
  t.same(await call(rsaToken(keys.privatePem, { ...good, exp: now() - 10 })), { status: 401, code: 'TOKEN_EXPIRED' })
  t.equal(seen.length, 1)
})

test('without external_jwt, a foreign JWT is refused', async (t) => {
  const { call } = await setup(t, undefined)
  t.same(await call(hmacToken(SECRET, claims())), { status: 401, code: 'UNAUTHORIZED' })
})

test('an external JWT can be exchanged for gateway tokens', async (t) => {
  const gw = await buildGateway(t, { external_jwt: { secret: SECRET, algorithms: ['HS256'] } })
  const ok = await request(`${gw.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jwt: hmacToken(SECRET, claims()) }) })
  t.equal(ok.statusCode, 200)
  const pair = await ok.body.json() as { access_token: string }
  t.type(pair.access_token, 'string')
  const bad = await request(`${gw.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jwt: unsignedToken(claims()) }) })
  t.equal(bad.statusCode, 401)
  t.equal((await bad.body.json() as { error: { code: string } }).error.code, 'UNAUTHORIZED')
})
