import { test } from 'tap'
import pino from 'pino'
import { createHash } from 'node:crypto'
import { AuthCache } from '../../lib/auth/cache.js'
import { ApiKeyStore } from '../../lib/auth/api-keys.js'
import { sha256Digest, sha256Hex } from '../../lib/hash.js'
import { GatewayTokens, VERIFIED_CACHE_MAX } from '../../lib/auth/gateway-tokens.js'
import { bearerToken } from '../../lib/auth/bearer.js'
import { Authenticator, type Credential } from '../../lib/auth/index.js'
import type { DeviceAuthenticator } from '../../lib/auth/types.js'
import { RefreshStore } from '../../lib/auth/refresh-store.js'
import type { AuthResult, Principal } from '../../lib/auth/principal.js'
import { ConnectionRegistry, TRANSITIONS, type ConnectionState } from '../../lib/registry.js'

const alice: Principal = { user_id: 'alice', device_id: 'd1', method: 'device', scopes: [] }
const bob: Principal = { user_id: 'bob', method: 'api_key', scopes: [] }

test('auth cache: LRU bound, TTL, credential expiry, invalidation, hit/miss counts', async (t) => {
  let clock = 1000
  let hits = 0
  let misses = 0
  const cache = new AuthCache({ max: 2, ttlMs: 100, now: () => clock, onHit: () => hits++, onMiss: () => misses++ })
  const a = AuthCache.key('device', 'd1', 'secret')
  t.not(a, AuthCache.key('device', 'd1', 'other'))
  t.not(AuthCache.key('device', 'd1', 'x'), AuthCache.key('device', 'd1x', ''), 'parts are separated')
  t.notMatch(a, /secret/)
  cache.set('a', alice)
  cache.set('b', bob)
  t.equal(cache.get('a'), alice, 'a is now the most recent')
  cache.set('c', bob)
  t.equal(cache.get('b'), undefined, 'the least recently used went')
  t.equal(cache.size, 2)
  clock += 101
  t.equal(cache.get('a'), undefined, 'expired after the TTL')
  cache.set('short', { ...bob, expires_at: clock + 10 })
  clock += 11
  t.equal(cache.get('short'), undefined, 'never trusted past the credential expiry')
  cache.set('a', alice)
  cache.set('c', bob)
  t.equal(cache.invalidate({ device_id: 'd1' }), 1)
  t.equal(cache.invalidate({ user_id: 'bob' }), 1)
  t.equal(cache.size, 0)
  t.equal(hits, 1)
  t.equal(misses, 3)
})

test('refresh store: rotation, reuse, expiry, bound and sweep', async (t) => {
  let clock = 0
  const store = new RefreshStore<string>({ ttlMs: 1000, max: 2, revokedTtlMs: 500, now: () => clock })
  const one = store.issue(alice, 'cred-a')
  t.match(one.token, /^[\w-]{22}\.1\.[\w-]{43}$/)
  const next = store.rotate(one.token)
  t.equal(next.status, 'ok')
  const token2 = next.status === 'ok' ? next.token : ''
  t.equal(store.inspect(token2).status, 'ok', 'inspect does not spend')
  t.equal(store.rotate(token2.slice(0, -1) + (token2.endsWith('A') ? 'B' : 'A')).status, 'invalid', 'a forged secret')
  t.equal(store.rotate(one.token).status, 'reused')
  t.ok(store.isRevoked(one.family.sid))
  t.equal(store.rotate(token2).status, 'invalid', 'the family is gone')
  clock += 501
  t.notOk(store.isRevoked(one.family.sid), 'revocations are remembered for the access token TTL')

  const a = store.issue(alice, 'a')
  store.issue(bob, 'b')
  store.issue(bob, 'c')
  t.equal(store.size, 2, 'bounded')
  t.equal(store.rotate(a.token).status, 'invalid', 'the oldest family was evicted')

  clock += 1001
  t.equal(store.sweep(), 2)
  t.equal(store.size, 0)
  const late = store.issue(alice, 'x')
  clock += 1001
  t.equal(store.rotate(late.token).status, 'expired')
})

test('registry: transitions are data, illegal ones throw a 409 error', async (t) => {
  const registry = new ConnectionRegistry(pino({ level: 'silent' }))
  const c = registry.open({ kind: 'session', route: '/ws', remoteAddress: '127.0.0.1' })
  t.equal(c.state, 'initial')
  t.throws(() => { c.transition('running') }, { code: 'ILLEGAL_TRANSITION', statusCode: 409 })
  for (const s of ['authorizing', 'running', 'refreshing', 'running', 'paused', 'running'] as ConnectionState[]) c.transition(s)
  t.throws(() => { c.transition('authorizing') }, { code: 'ILLEGAL_TRANSITION' })
  t.throws(() => registry.resume(c.id), { code: 'ILLEGAL_TRANSITION' }, 'resume a running connection')
  t.throws(() => registry.pause('nope'), { code: 'CONNECTION_NOT_FOUND', statusCode: 404 })
  t.same(TRANSITIONS.closed, [])
  for (const [from, tos] of Object.entries(TRANSITIONS)) {
    if (from !== 'stopping' && from !== 'closed') t.ok(tos.includes('stopping'), `${from} → stopping`)
  }
  c.close()
  t.equal(registry.size, 0, 'closed connections leave the registry')
  c.close()
  t.equal(c.state, 'closed', 'close is idempotent')
})

test('registry: list filters and pages with a cursor', async (t) => {
  const registry = new ConnectionRegistry(pino({ level: 'silent' }))
  const made = Array.from({ length: 5 }, (_, i) => registry.open({ kind: 'ws_proxy', route: '/r', remoteAddress: 'x', principal: i % 2 === 0 ? alice : bob }))
  made[0].transition('authorizing')
  const first = registry.list({ limit: 2 })
  t.same(first.connections.map(c => c.id), [made[0].id, made[1].id])
  t.type(first.next_cursor, 'string')
  const second = registry.list({ limit: 2, cursor: first.next_cursor as string })
  t.same(second.connections.map(c => c.id), [made[2].id, made[3].id])
  const last = registry.list({ limit: 2, cursor: second.next_cursor as string })
  t.same(last.connections.map(c => c.id), [made[4].id])
  t.equal(last.next_cursor, null)
  t.equal(registry.list({ user_id: 'alice' }).connections.length, 3)
  t.equal(registry.list({ device_id: 'd1', state: 'authorizing' }).connections.length, 1)
  t.same(registry.countByState(), { initial: 4, authorizing: 1, running: 0, paused: 0, refreshing: 0, stopping: 0, closed: 0 })
})

test('a remembered access token and a configured API key give one frozen principal each, the same object on every request', async (t) => {
  const { createSigner, createVerifier } = await import('fast-jwt')
  const key = 'unit-test-secret-0123456789abcdef0123456789'
  const codec = { sign: createSigner({ key, algorithm: 'HS256', expiresIn: 60_000 }), verify: createVerifier({ key, algorithms: ['HS256'] }) }
  const tokens = new GatewayTokens(codec, 'HS256', 60_000)
  const { token } = tokens.sign(alice, 'sid-1')
  const first = tokens.verify(token)
  t.ok(first.ok)
  const a = tokens.lookup(token)
  const b = tokens.lookup(token)
  t.ok(a?.ok === true && b?.ok === true)
  if (a?.ok !== true || b?.ok !== true) return
  t.equal(a.principal, b.principal, 'the same principal object for the same token')
  t.same(a.principal, { user_id: 'alice', device_id: 'd1', method: 'device', scopes: [], expires_at: a.principal.expires_at })
  t.equal(a.sid, 'sid-1')
  t.ok(Object.isFrozen(a.principal) && Object.isFrozen(a.principal.scopes), 'shared, so frozen')
  t.throws(() => { (a.principal as { user_id: string }).user_id = 'mallory' }, TypeError, 'no caller can change it for the next request')

  // The cache is keyed by the signature: a token with another payload under the same signature is no hit.
  const [head, body, signature] = token.split('.')
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>
  const forged = `${head}.${Buffer.from(JSON.stringify({ ...claims, sub: 'mallory' })).toString('base64url')}.${signature}`
  t.equal(tokens.lookup(forged), undefined, 'same signature, other payload: not taken from the cache')
  t.equal(tokens.verify(forged).ok, false, 'and refused by the verifier')
  t.equal(tokens.lookup(token)?.ok, true, 'the verified token is still remembered')

  const store = new ApiKeyStore([{ key_sha256: sha256Hex('k-1'), user_id: 'bob', scopes: ['read'] }])
  t.equal(sha256Hex('k-1'), createHash('sha256').update('k-1').digest('hex'), 'the one-shot hash is sha256 hex')
  t.same(sha256Digest('k-1 ключ'), createHash('sha256').update('k-1 ключ', 'utf8').digest(), 'the one-shot digest is sha256 of the UTF-8 bytes')
  const k1 = store.lookup('k-1')
  const k2 = store.lookup('k-1')
  t.equal(k1?.principal, k2?.principal, 'the same principal object for the same key')
  t.same(k1?.principal, { user_id: 'bob', method: 'api_key', scopes: ['read'] })
  t.ok(k1 !== undefined && Object.isFrozen(k1.principal) && Object.isFrozen(k1.principal.scopes))
  t.equal(store.lookup('other'), undefined)
})

test('two logins with one API key keep their own refresh families; only per-request route checks share the key\'s principal', async (t) => {
  const { createSigner, createVerifier } = await import('fast-jwt')
  const key = 'unit-test-secret-0123456789abcdef0123456789'
  const codec = { sign: createSigner({ key, algorithm: 'HS256', expiresIn: 60_000 }), verify: createVerifier({ key, algorithms: ['HS256'] }) }
  const refresh = new RefreshStore<Credential>({ ttlMs: 3_600_000, max: 100, revokedTtlMs: 60_000 })
  const auth = new Authenticator({
    deviceAuth: {} as DeviceAuthenticator,
    apiKeys: new ApiKeyStore([{ key_sha256: sha256Hex('k-1'), user_id: 'bob', scopes: ['read'] }]),
    tokens: new GatewayTokens(codec, 'HS256', 60_000),
    refresh,
    cache: new AuthCache({ max: 10, ttlMs: 1000 }),
    log: pino({ level: 'silent' })
  })
  const sidOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { sid: string }).sid
  const principalOf = (result: AuthResult): Principal => {
    if (!result.ok) throw new Error(result.reason)
    return result.principal
  }
  // Session A says hello with the key; then B (or POST /auth/token) logs in with the same key.
  const a = principalOf(auth.authenticateApiKey('k-1'))
  const pairA = auth.issueTokens(a)
  const b = principalOf(auth.authenticateApiKey('k-1'))
  const pairB = auth.issueTokens(b)
  t.not(a, b, 'each login has its own principal')
  t.not(sidOf(pairA.access_token), sidOf(pairB.access_token))
  const renewed = auth.renewAccess(a)
  t.equal(renewed !== undefined && sidOf(renewed.access_token), sidOf(pairA.access_token), 'A renews within its own login, not the last one issued for the key')
  // B's refresh token used twice revokes B's login only.
  t.ok((await auth.refreshTokens(pairB.refresh_token)).ok)
  t.notOk((await auth.refreshTokens(pairB.refresh_token)).ok)
  const again = auth.renewAccess(a)
  t.ok(again !== undefined && !refresh.isRevoked(sidOf(again.access_token)), 'A is untouched by B\'s revocation')

  const r1 = principalOf(auth.authenticateApiKey('k-1', true))
  const r2 = principalOf(auth.authenticateApiKey('k-1', true))
  t.equal(r1, r2, 'route checks share one frozen principal')
  t.ok(Object.isFrozen(r1))
})

test('bearerToken: the token of Authorization: Bearer, the scheme in any case, spaces around it', async (t) => {
  t.equal(bearerToken('Bearer abc.def'), 'abc.def')
  t.equal(bearerToken('bearer abc'), 'abc')
  t.equal(bearerToken('BEARER abc'), 'abc')
  t.equal(bearerToken('Bearer    abc   '), 'abc')
  t.equal(bearerToken('Bearer a'), 'a')
  const refused = [undefined, '', 'Bearer', 'Bearer ', 'Bearer     ', 'Bearerabc', 'Bearer\tabc', 'Basic abc', 'Bearer a b', 'Bearer a  b ',
    'xBearer abc', 'Beare abc', 'Bearer a\tb', 'Bearer abc\xa0', 'Bearer  \t', 'Bearer abc\t ', 'Bearer a\vb', 'Bearer a\fb']
  for (const bad of refused) t.equal(bearerToken(bad), undefined, JSON.stringify(bad))
})

test('bearerToken gives what /^Bearer +(\\S+) *$/i gives, for every short one-byte header value over a mixed alphabet', async (t) => {
  const REGEX = /^Bearer +(\S+) *$/i
  const alphabet = ['B', 'b', 'e', 'E', 'a', 'r', 'R', ' ', '\t', '\xa0', 'x', '.', '\v']
  const prefixes = ['Bearer ', 'bEaReR ', 'Bearer  ', 'Bearer', 'Beare ', '']
  let checked = 0
  let differ = 0
  const walk = (tail: string, depth: number): void => {
    for (const p of prefixes) {
      checked++
      if (bearerToken(p + tail) !== REGEX.exec(p + tail)?.[1]) differ++
    }
    if (depth === 0) return
    for (const c of alphabet) walk(tail + c, depth - 1)
  }
  walk('', 4)
  t.ok(checked > 100_000, `${checked} header values`)
  t.equal(differ, 0)
})

test('the verified-token cache: a token sharing another\'s key replaces it, and the cache holds at most VERIFIED_CACHE_MAX', async (t) => {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')
  const head = b64({ alg: 'HS256', typ: 'JWT' })
  const exp = Math.floor(Date.now() / 1000) + 600
  const make = (sub: string, signature: string): string => `${head}.${b64({ sub, mth: 'device', sid: 's', exp })}.${signature}`
  // A codec that takes any signature: this test is about the cache, not the check.
  const codec = { sign: () => '', verify: (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown> }
  const tokens = new GatewayTokens(codec, 'HS256', 600_000)

  const signature = 's'.repeat(43)
  const a = make('alice', signature)
  const b = make('bob', signature)
  t.equal(tokens.verify(a).ok, true)
  t.equal(tokens.verify(b).ok, true)
  t.equal(tokens.lookup(a), undefined, 'replaced by the token with the same key')
  const hit = tokens.lookup(b)
  t.equal(hit?.ok === true ? hit.principal.user_id : undefined, 'bob')

  const many = Array.from({ length: VERIFIED_CACHE_MAX + 1 }, (_, i) => make(`u${i}`, `${i}`.padStart(43, 'x')))
  for (const token of many) tokens.verify(token)
  t.equal(tokens.lookup(b), undefined, 'the oldest entries went first')
  t.equal(tokens.lookup(many[0]), undefined)
  t.equal(tokens.lookup(many[1])?.ok, true, 'VERIFIED_CACHE_MAX entries are kept')
  t.equal(tokens.lookup(many[VERIFIED_CACHE_MAX])?.ok, true)
})
