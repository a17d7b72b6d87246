import { test } from 'tap'
import { loadConfig } from '../../lib/config.js'
import { configError, yamlFile } from '../config-helpers.js'

const HASH = 'a'.repeat(64)

test('auth defaults', async (t) => {
  const c = loadConfig({ env: {} })
  t.equal(c.adminToken, undefined)
  t.equal(c.tokens.algorithm, 'HS256')
  t.equal(c.tokens.secret, undefined)
  t.equal(c.tokens.accessTtlMs, 15 * 60_000)
  t.equal(c.tokens.refreshTtlMs, 30 * 86_400_000)
  t.equal(c.tokens.refreshStoreMax, 100_000)
  t.same(c.apiKeys, [])
  t.equal(c.externalJwt, undefined)
  t.same(c.authCache, { max: 10_000, ttlMs: 60_000 })
  t.equal(c.pauseBufferBytes, 1024 * 1024)
  t.equal(c.docsUi, false)
})

test('auth keys from the environment', async (t) => {
  const c = loadConfig({
    env: {
      GATEWAY_ADMIN_TOKEN: 'admin-token-0123456789',
      GATEWAY_JWT_SECRET: 's'.repeat(32),
      GATEWAY_ACCESS_TOKEN_TTL: '5m',
      GATEWAY_REFRESH_TOKEN_TTL: '7d',
      GATEWAY_REFRESH_STORE_MAX: '50',
      GATEWAY_PAUSE_BUFFER_BYTES: '4096',
      GATEWAY_DOCS_UI: 'true',
      GATEWAY_JWT_ALGORITHM: 'HS512'
    }
  })
  t.equal(c.adminToken, 'admin-token-0123456789')
  t.equal(c.tokens.secret, 's'.repeat(32))
  t.equal(c.tokens.algorithm, 'HS512')
  t.equal(c.tokens.accessTtlMs, 300_000)
  t.equal(c.tokens.refreshTtlMs, 7 * 86_400_000)
  t.equal(c.tokens.refreshStoreMax, 50)
  t.equal(c.pauseBufferBytes, 4096)
  t.equal(c.docsUi, true)
})

test('api_keys, external_jwt and auth_cache from YAML', async (t) => {
  const file = yamlFile([
    'api_keys:',
    `  - { key_sha256: "${HASH.toUpperCase()}", user_id: u1, scopes: [read] }`,
    'external_jwt:',
    '  secret: "0123456789abcdef0123456789abcdef"',
    '  algorithms: [HS256, HS384]',
    '  issuer: https://idp.example',
    '  audience: gateway',
    'auth_cache: { max: 5 }',
    ''
  ].join('\n'))
  const c = loadConfig({ env: { GATEWAY_CONFIG: file } })
  t.same(c.apiKeys, [{ key_sha256: HASH, user_id: 'u1', scopes: ['read'] }])
  t.same(c.externalJwt, { secret: '0123456789abcdef0123456789abcdef', publicKeyPath: undefined, algorithms: ['HS256', 'HS384'], issuer: 'https://idp.example', audience: 'gateway' })
  t.same(c.authCache, { max: 5, ttlMs: 60_000 })
})

test('bad auth values fail at load naming the key', async (t) => {
  const load = (overrides: Record<string, unknown>, env: Record<string, string> = {}): string => configError(() => loadConfig({ env, overrides }))
  t.match(load({}, { GATEWAY_ADMIN_TOKEN: 'short' }), /^invalid configuration: admin_token \(GATEWAY_ADMIN_TOKEN\): a token of at least 16 characters, got a value that is not shown$/)
  t.match(load({}, { GATEWAY_JWT_SECRET: 'too-short' }), /^invalid configuration: jwt_secret \(GATEWAY_JWT_SECRET\): a secret of at least 32 characters/)
  t.notMatch(load({}, { GATEWAY_JWT_SECRET: 'too-short' }), /too-short/, 'a secret is never echoed')
  t.match(load({}, { GATEWAY_ACCESS_TOKEN_TTL: 'soon' }), /access_token_ttl \(GATEWAY_ACCESS_TOKEN_TTL\): a duration such as 15m/)
  t.match(load({}, { GATEWAY_ACCESS_TOKEN_TTL: '0' }), /access_token_ttl \(GATEWAY_ACCESS_TOKEN_TTL\): expected a duration above zero/)
  t.match(load({}, { GATEWAY_REFRESH_TOKEN_TTL: '0d' }), /refresh_token_ttl \(GATEWAY_REFRESH_TOKEN_TTL\): expected a duration above zero/)
  t.match(load({}, { GATEWAY_PAUSE_BUFFER_BYTES: '10' }), /pause_buffer_bytes \(GATEWAY_PAUSE_BUFFER_BYTES\).*greater or equal to 1024/)
  t.match(load({}, { GATEWAY_DOCS_UI: 'perhaps' }), /docs_ui \(GATEWAY_DOCS_UI\): expected boolean/)
  t.match(load({}, { GATEWAY_JWT_ALGORITHM: 'none' }), /jwt_algorithm \(GATEWAY_JWT_ALGORITHM\): one of HS256/)
  t.match(load({}, { GATEWAY_JWT_ALGORITHM: 'RS256' }), /jwt_algorithm \(GATEWAY_JWT_ALGORITHM\): expected an HS algorithm with a secret/)
  t.match(load({ jwt_private_key_path: '/k.pem' }), /jwt_public_key_path \(GATEWAY_JWT_PUBLIC_KEY_PATH\): must be set together/)
  t.match(load({ jwt_private_key_path: '/k.pem', jwt_public_key_path: '/p.pem', jwt_algorithm: 'HS256' }), /jwt_algorithm.*asymmetric algorithm/)
  t.match(load({ jwt_private_key_path: '/k.pem', jwt_public_key_path: '/p.pem', jwt_secret: 's'.repeat(32) }), /jwt_secret \(GATEWAY_JWT_SECRET\): set either/)
  t.match(load({ api_keys: [{ key_sha256: 'nothex', user_id: 'u' }] }), /api_keys\[0\]\.key_sha256: a hex sha256 of the key/)
  t.match(load({ api_keys: [{ key_sha256: HASH, user_id: 'u' }, { key_sha256: HASH, user_id: 'v' }] }), /api_keys\[1\]\.key_sha256: duplicate key/)
  t.match(load({ api_keys: [{ key_sha256: HASH, user_id: 'u', extra: 1 }] }), /api_keys\[0\]\.extra: unknown key/)
  t.match(load({ auth_cache: { max: 0 } }), /auth_cache\.max: an entry count of at least 1/)
  t.match(load({ auth_cache: { ttl: '0' } }), /auth_cache\.ttl: expected a duration above zero/)
})

test('external_jwt refuses none, empty keys and mixed key kinds at load', async (t) => {
  const load = (external: Record<string, unknown>): string => configError(() => loadConfig({ env: {}, overrides: { external_jwt: external } }))
  const secret = '0123456789abcdef0123456789abcdef'
  t.match(load({ secret, algorithms: ['none'] }), /^invalid configuration: external_jwt\.algorithms\[0\]: "none" is refused: it would accept unsigned tokens$/)
  t.match(load({ secret, algorithms: ['HS256', 'None'] }), /external_jwt\.algorithms\[1\]: "none" is refused/)
  t.match(load({ secret, algorithms: [] }), /external_jwt\.algorithms: a non-empty list of algorithms/)
  t.match(load({ secret }), /external_jwt\.algorithms: a non-empty list of algorithms, got nothing/)
  t.match(load({ secret, algorithms: ['XS256'] }), /external_jwt\.algorithms\[0\]: expected one of HS256/)
  t.match(load({ secret: '', algorithms: ['HS256'] }), /external_jwt\.secret: an HMAC secret of at least 32 characters, got a value that is not shown/)
  t.match(load({ public_key_path: '', algorithms: ['RS256'] }), /external_jwt\.public_key_path/)
  t.match(load({ algorithms: ['HS256'] }), /external_jwt: needs exactly one of secret or public_key_path/)
  t.match(load({ secret, public_key_path: '/p.pem', algorithms: ['HS256'] }), /external_jwt: needs exactly one of/)
  t.match(load({ secret, algorithms: ['RS256'] }), /external_jwt\.algorithms\[0\]: RS256 needs public_key_path/)
  t.match(load({ public_key_path: '/p.pem', algorithms: ['RS256', 'HS256'] }), /external_jwt\.algorithms\[1\]: HS256 needs a secret/)
})
