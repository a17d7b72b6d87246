import { test } from 'tap'
import { join } from 'node:path'
import { loadConfig } from '../../lib/config.js'
import { configError, yamlFile } from '../config-helpers.js'
import { parseDuration } from '../../lib/duration.js'

test('defaults need no file and no environment', async (t) => {
  const c = loadConfig({ env: {} })
  t.same(c.listen, { host: '0.0.0.0', port: 8080 })
  t.equal(c.logFormat, 'json')
  t.equal(c.metrics.enabled, false)
  t.equal(c.metrics.path, '/metrics')
  t.equal(c.maxStreams, 16)
  t.equal(c.maxFrameBytes, 1024 * 1024)
  t.equal(c.helloTimeoutMs, 10_000)
  t.equal(c.pingIntervalMs, 30_000)
  t.equal(c.backend, undefined)
  t.same(c.routes, [])
})

test('durations accept ms, s, m, h and plain milliseconds', async (t) => {
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('5s'), 5000)
  t.equal(parseDuration('1m'), 60_000)
  t.equal(parseDuration('2h'), 7_200_000)
  t.equal(parseDuration('250'), 250)
  t.equal(parseDuration(42), 42)
  t.equal(loadConfig({ env: { BACKEND_TIMEOUT: '1500ms' } }).backendTimeoutMs, 1500)
  t.equal(loadConfig({ env: { BACKEND_TIMEOUT: '3' } }).backendTimeoutMs, 3)
})

test('environment wins over YAML', async (t) => {
  const file = yamlFile('listen_addr: 127.0.0.1:9000\nmax_streams: 4\nlog_format: text\n')
  const c = loadConfig({ env: { GATEWAY_CONFIG: file, GATEWAY_MAX_STREAMS: '8' } })
  t.same(c.listen, { host: '127.0.0.1', port: 9000 })
  t.equal(c.maxStreams, 8)
  t.equal(c.logFormat, 'text')
})

test('listen address forms', async (t) => {
  t.same(loadConfig({ env: { GATEWAY_LISTEN_ADDR: ':9090' } }).listen, { host: '0.0.0.0', port: 9090 })
  t.same(loadConfig({ env: { GATEWAY_LISTEN_ADDR: '[::1]:9090' } }).listen, { host: '::1', port: 9090 })
  t.match(configError(() => loadConfig({ env: { GATEWAY_LISTEN_ADDR: 'nope' } })), /listen_addr \(GATEWAY_LISTEN_ADDR\): host:port or :port, got "nope"/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_LISTEN_ADDR: ':99999' } })), /listen_addr.*port must be 0-65535/)
})

test('bad values name the key and what was expected', async (t) => {
  t.match(configError(() => loadConfig({ env: { GATEWAY_MAX_STREAMS: 'abc' } })), /^invalid configuration: max_streams \(GATEWAY_MAX_STREAMS\): expected integer, got "abc"$/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_MAX_STREAMS: '0' } })), /max_streams \(GATEWAY_MAX_STREAMS\).*greater or equal to 1/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_LOG_FORMAT: 'xml' } })), /log_format \(GATEWAY_LOG_FORMAT\)/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_METRICS_ENABLED: 'maybe' } })), /metrics_enabled \(GATEWAY_METRICS_ENABLED\): expected boolean, got "maybe"/)
  t.match(configError(() => loadConfig({ env: { BACKEND_TIMEOUT: 'soon' } })), /backend_timeout \(BACKEND_TIMEOUT\): a duration such as 500ms/)
  t.match(configError(() => loadConfig({ env: { BACKEND_BASE_URL: 'ftp://x' } })), /backend_base_url \(BACKEND_BASE_URL\): an http:\/\/ or https:\/\/ URL/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_METRICS_PATH: 'metrics' } })), /metrics_path \(GATEWAY_METRICS_PATH\): a path starting with \//)
  t.match(configError(() => loadConfig({ env: { GATEWAY_PING_INTERVAL: '0' } })), /ping_interval \(GATEWAY_PING_INTERVAL\): expected a duration above zero/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_TLS_CERT_PATH: '/x.pem' } })), /tls_key_path \(GATEWAY_TLS_KEY_PATH\): must be set together/)
})

test('unknown keys and variables are refused', async (t) => {
  t.match(configError(() => loadConfig({ env: { GATEWAY_MAX_STREAM: '3' } })), /GATEWAY_MAX_STREAM: unknown environment variable/)
  const file = yamlFile('max_streams: 4\nmax_stream: 5\n')
  t.match(configError(() => loadConfig({ env: { GATEWAY_CONFIG: file } })), /max_stream: unknown key/)
  const routeFile = yamlFile('routes:\n  - prefix: /api\n    upstream: http://127.0.0.1:1\n    upsteam: x\n')
  t.match(configError(() => loadConfig({ env: { GATEWAY_CONFIG: routeFile } })), /routes\[0\]\.upsteam: unknown key/)
})

test('YAML file problems name GATEWAY_CONFIG', async (t) => {
  t.match(configError(() => loadConfig({ env: { GATEWAY_CONFIG: '/does/not/exist.yaml' } })), /GATEWAY_CONFIG: cannot read \/does\/not\/exist.yaml/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_CONFIG: yamlFile('a: [1,\n') } })), /GATEWAY_CONFIG: .* is not valid YAML/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_CONFIG: yamlFile('- 1\n- 2\n') } })), /must hold a mapping/)
  t.same(loadConfig({ env: { GATEWAY_CONFIG: yamlFile('') } }).routes, [])
})

test('routes: defaults, validation, reserved and duplicate prefixes', async (t) => {
  const c = loadConfig({ env: {}, overrides: { routes: [{ prefix: '/api/', upstream: 'http://127.0.0.1:9001/' }] } })
  t.same(c.routes[0], { prefix: '/api', upstream: 'http://127.0.0.1:9001', rewritePrefix: '/', websocket: false, timeoutMs: 30_000, rateLimit: undefined, auth: 'required' })
  const full = loadConfig({ env: {}, overrides: { routes: [{ prefix: '/v', upstream: 'https://h', rewritePrefix: '/v2', websocket: true, timeout: '2s', rate_limit: { max: 5, window: '1m' }, auth: 'none' }] } })
  t.same(full.routes[0], { prefix: '/v', upstream: 'https://h', rewritePrefix: '/v2', websocket: true, timeoutMs: 2000, rateLimit: { max: 5, windowMs: 60_000 }, auth: 'none' })
  const bad = (route: object): string => configError(() => loadConfig({ env: {}, overrides: { routes: [route] } }))
  t.match(bad({ prefix: 'api', upstream: 'http://h' }), /routes\[0\]\.prefix: a path prefix starting with \//)
  t.match(bad({ prefix: '/api', upstream: 'h:80' }), /routes\[0\]\.upstream: an http:\/\/ or https:\/\/ URL/)
  t.match(bad({ prefix: '/api', upstream: 'http://h', auth: 'maybe' }), /routes\[0\]\.auth/)
  t.match(bad({ prefix: '/api' }), /routes\[0\]\.upstream/)
  t.match(bad({ prefix: '/ws', upstream: 'http://h' }), /overlaps a path the gateway serves itself/)
  t.match(bad({ prefix: '/health/x', upstream: 'http://h' }), /overlaps/)
  t.match(bad({ prefix: '/a/../b', upstream: 'http://h' }), /must not contain \. or \.\. segments/)
  t.match(configError(() => loadConfig({ env: {}, overrides: { routes: [{ prefix: '/a', upstream: 'http://h' }, { prefix: '/a/', upstream: 'http://i' }] } })), /routes\[1\]\.prefix: duplicate prefix "\/a"/)
  t.match(configError(() => loadConfig({ env: {}, overrides: { rate_limit: { max: 0, window: '1s' } } })), /rate_limit\.max/)
  t.match(configError(() => loadConfig({ env: {}, overrides: { rate_limit: { max: 5, window: 0 } } })), /rate_limit\.window: expected a duration above zero/)
  t.match(bad({ prefix: '/api', upstream: 'http://h', rate_limit: { max: 5, window: '0s' } }), /routes\[0\]\.rate_limit\.window: expected a duration above zero/)
  t.match(bad({ prefix: '//evil.example', upstream: 'http://h' }), /routes\[0\]\.prefix: must not contain empty segments/)
  t.match(bad({ prefix: '/a//b', upstream: 'http://h' }), /must not contain empty segments/)
  t.match(bad({ prefix: '//', upstream: 'http://h' }), /routes\[0\]\.prefix: "\/" overlaps/, 'slashes only: the catch-all')
})

test('devices need exactly one of token and token_sha256', async (t) => {
  const ok = loadConfig({ env: {}, overrides: { devices: [{ device_id: 'd', token: 't', user_id: 'u' }] } })
  t.equal(ok.devices.length, 1)
  t.match(configError(() => loadConfig({ env: {}, overrides: { devices: [{ device_id: 'd', user_id: 'u' }] } })), /devices\[0\]: needs exactly one of token or token_sha256/)
  t.match(configError(() => loadConfig({ env: {}, overrides: { devices: [{ device_id: 'd', token_sha256: 'zz', user_id: 'u' }] } })), /devices\[0\]\.token_sha256: a hex sha256/)
})

test('tcp allowlist from a comma-separated variable', async (t) => {
  t.same(loadConfig({ env: { GATEWAY_TCP_ALLOW: '127.0.0.1:7, Example.com:443 ,' } }).tcpAllow, ['127.0.0.1:7', 'example.com:443'])
  t.match(configError(() => loadConfig({ env: { GATEWAY_TCP_ALLOW: 'nohost' } })), /tcp_allow\[0\] \(GATEWAY_TCP_ALLOW\)|tcp_allow\[0\]/)
})

test('jwt_refresh_grace: 30s by default, a duration above zero, from YAML or the environment', async (t) => {
  t.equal(loadConfig({ env: {} }).jwtRefreshGraceMs, 30_000)
  t.equal(loadConfig({ env: { GATEWAY_JWT_REFRESH_GRACE: '5s' } }).jwtRefreshGraceMs, 5000)
  t.equal(loadConfig({ env: {}, file: yamlFile('jwt_refresh_grace: 1m\n') }).jwtRefreshGraceMs, 60_000)
  t.match(configError(() => loadConfig({ env: { GATEWAY_JWT_REFRESH_GRACE: '0' } })), /jwt_refresh_grace \(GATEWAY_JWT_REFRESH_GRACE\): expected a duration above zero/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_JWT_REFRESH_GRACE: 'soon' } })), /jwt_refresh_grace \(GATEWAY_JWT_REFRESH_GRACE\)/)
})

test('the shipped example config loads, and its commented routes are valid when enabled', async (t) => {
  const { readFileSync } = await import('node:fs')
  const example = join(process.cwd(), 'config', 'example-config.yaml')
  const c = loadConfig({ env: { GATEWAY_CONFIG: example } })
  t.equal(c.devices[0].device_id, 'demo-device')
  // Uncomment the routes block and it must still load.
  const text = readFileSync(example, 'utf8')
  const block = text.slice(text.indexOf('# routes:'), text.indexOf('\n\n', text.indexOf('# routes:')))
  const enabled = text.replace(block, block.split('\n').map(line => line.replace(/^# /, '')).join('\n'))
  const withRoutes = loadConfig({ env: { GATEWAY_CONFIG: yamlFile(enabled) } })
  t.same(withRoutes.routes.map(r => [r.prefix, r.rewritePrefix, r.auth]), [['/api', '/', 'none'], ['/billing', '/v2', 'required']])
})

test('a catch-all prefix, a metrics path over the gateway\'s own paths, and secrets in errors', async (t) => {
  t.match(configError(() => loadConfig({ env: {}, overrides: { routes: [{ prefix: '/', upstream: 'http://h' }] } })), /routes\[0\]\.prefix: "\/" overlaps/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_METRICS_PATH: '/health' } })), /^invalid configuration: metrics_path \(GATEWAY_METRICS_PATH\): "\/health" overlaps/)
  t.match(configError(() => loadConfig({ env: { GATEWAY_METRICS_PATH: '/admin/metrics' } })), /metrics_path.*overlaps/)
  const secret = configError(() => loadConfig({ env: {}, overrides: { devices: [{ device_id: 'd', token: 123456, user_id: 'u' }] } }))
  t.match(secret, /devices\[0\]\.token/)
  t.notMatch(secret, /123456/, 'the token is not printed')
  t.match(configError(() => loadConfig({ env: {}, overrides: { routes: [{ prefix: '/a', upstream: 'http://u:p@h' }] } })), /routes\[0\]\.upstream: no query, fragment or credentials/)
})
