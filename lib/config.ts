import { readFileSync } from 'node:fs'
import { Value } from '@sinclair/typebox/value'
import { parse as parseYaml } from 'yaml'
import {
  ConfigSchema, CONFIG_DEFAULTS, CONFIG_ENV, NON_CONFIG_ENV,
  type GatewayConfig, type RawConfig, type RateLimitConfig,
  JWT_ALGORITHMS, type JwtAlgorithm, type ExternalJwtConfig, type GatewayTokenConfig
} from '../schemas/config.js'
import { parseDuration } from './duration.js'

const KEY_TO_ENV = new Map(Object.entries(CONFIG_ENV).map(([env, key]) => [key, env]))
const RESERVED_PREFIXES = ['/ws', '/health', '/admin', '/auth', '/docs']
/** Keys whose values are never echoed in an error message. */
const SECRET_KEYS = new Set(['admin_token', 'jwt_secret', 'external_jwt', 'devices', 'api_keys'])

/** A configuration problem, reported as one line naming the key. */
export class ConfigError extends Error {
  constructor (public key: string, public detail: string) {
    super(`invalid configuration: ${key}: ${detail}`)
    this.name = 'ConfigError'
  }
}

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv
  /** Path of a YAML file; defaults to env.GATEWAY_CONFIG. */
  file?: string
  /** Values that win over the file and the environment (used by tests and embedders). */
  overrides?: Record<string, unknown>
}

export function loadConfig (opts: LoadConfigOptions = {}): GatewayConfig {
  const env = opts.env ?? process.env
  const file = opts.file ?? env.GATEWAY_CONFIG
  const fromFile = file !== undefined && file !== '' ? readYaml(file) : {}
  const raw = { ...CONFIG_DEFAULTS, ...fromFile, ...readEnv(env), ...opts.overrides }
  return resolveConfig(raw)
}

function readYaml (file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError('GATEWAY_CONFIG', `cannot read ${file}: ${(err as Error).message}`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    throw new ConfigError('GATEWAY_CONFIG', `${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError('GATEWAY_CONFIG', `${file} must hold a mapping of config keys`)
  }
  return doc as Record<string, unknown>
}

function readEnv (env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue
    const key = CONFIG_ENV[name]
    if (key === undefined) {
      // A misspelt variable would otherwise be ignored without a word.
      if (name.startsWith('GATEWAY_') && !NON_CONFIG_ENV.has(name)) {
        throw new ConfigError(name, `unknown environment variable; known: ${Object.keys(CONFIG_ENV).join(', ')}`)
      }
      continue
    }
    if (value === '') continue
    out[key] = coerceEnv(key, value)
  }
  return out
}

function coerceEnv (key: keyof RawConfig, value: string): unknown {
  if (key === 'tcp_allow') return value.split(',').map(s => s.trim()).filter(s => s !== '')
  if (key === 'metrics_enabled' || key === 'docs_ui') {
    if (/^(true|1|yes|on)$/i.test(value)) return true
    if (/^(false|0|no|off)$/i.test(value)) return false
    return value
  }
  if (key === 'max_streams' || key === 'max_frame_bytes' || key === 'pause_buffer_bytes' || key === 'refresh_store_max') return /^\d+$/.test(value) ? Number(value) : value
  return value
}

function describeKey (path: string): string {
  const parts = path.split('/').filter(p => p !== '')
  const name = parts.map((p, i) => /^\d+$/.test(p) ? `[${p}]` : (i === 0 ? p : `.${p}`)).join('')
  const env = KEY_TO_ENV.get(parts[0] as keyof RawConfig)
  return env !== undefined ? `${name} (${env})` : name
}

function checkMetricsPath (path: string): void {
  if (RESERVED_PREFIXES.some(p => path === p || path.startsWith(p + '/')) || path === '/') {
    throw new ConfigError(describeKey('/metrics_path'), `${JSON.stringify(path)} overlaps a path the gateway serves itself`)
  }
}

function resolveConfig (raw: Record<string, unknown>): GatewayConfig {
  const first = Value.Errors(ConfigSchema, raw).First()
  if (first !== undefined) {
    const expected = first.schema.description ?? first.message.replace(/^Expected/, 'expected')
    if (first.message.startsWith('Unexpected property')) {
      throw new ConfigError(describeKey(first.path), 'unknown key')
    }
    const secret = SECRET_KEYS.has(first.path.split('/')[1])
    const got = first.value === undefined ? 'nothing' : (secret ? 'a value that is not shown' : JSON.stringify(first.value))
    throw new ConfigError(describeKey(first.path), `${expected}, got ${got}`)
  }
  const c = raw as RawConfig
  checkMetricsPath(c.metrics_path)
  return {
    listen: parseListen(c.listen_addr),
    tls: resolveTls(c),
    logLevel: c.log_level,
    logFormat: c.log_format,
    metrics: { enabled: c.metrics_enabled, path: c.metrics_path },
    backend: c.backend_base_url !== undefined
      ? { baseUrl: c.backend_base_url.replace(/\/+$/, ''), timeoutMs: parseDuration(c.backend_timeout) }
      : undefined,
    backendTimeoutMs: parseDuration(c.backend_timeout),
    maxStreams: c.max_streams,
    maxFrameBytes: c.max_frame_bytes,
    helloTimeoutMs: positiveDuration('hello_timeout', c.hello_timeout),
    pingIntervalMs: positiveDuration('ping_interval', c.ping_interval),
    shutdownTimeoutMs: parseDuration(c.shutdown_timeout),
    tcpAllow: c.tcp_allow.map(t => t.toLowerCase()),
    defaultUpstream: c.default_upstream,
    rateLimit: c.rate_limit !== undefined ? resolveRateLimit(c.rate_limit, 'rate_limit') : undefined,
    routes: resolveRoutes(c),
    devices: resolveDevices(c),
    adminToken: c.admin_token,
    tokens: resolveTokens(c),
    apiKeys: resolveApiKeys(c),
    externalJwt: resolveExternalJwt(c),
    authCache: { max: c.auth_cache?.max ?? 10_000, ttlMs: positiveTtl('auth_cache/ttl', c.auth_cache?.ttl ?? '60s') },
    pauseBufferBytes: c.pause_buffer_bytes,
    jwtRefreshGraceMs: positiveDuration('jwt_refresh_grace', c.jwt_refresh_grace),
    docsUi: c.docs_ui
  }
}

function positiveDuration (key: keyof RawConfig, value: string | number): number {
  const ms = parseDuration(value)
  if (ms <= 0) throw new ConfigError(describeKey(`/${key}`), `expected a duration above zero, got ${JSON.stringify(value)}`)
  return ms
}

function parseListen (addr: string): { host: string, port: number } {
  const idx = addr.lastIndexOf(':')
  let host = addr.slice(0, idx)
  const port = Number(addr.slice(idx + 1))
  if (port > 65535) throw new ConfigError(describeKey('/listen_addr'), `port must be 0-65535, got ${JSON.stringify(addr)}`)
  if (host.startsWith('[')) host = host.slice(1, -1)
  return { host: host === '' ? '0.0.0.0' : host, port }
}

function resolveTls (c: RawConfig): GatewayConfig['tls'] {
  if (c.tls_cert_path === undefined && c.tls_key_path === undefined) return undefined
  if (c.tls_cert_path === undefined) throw new ConfigError(describeKey('/tls_cert_path'), 'must be set together with tls_key_path')
  if (c.tls_key_path === undefined) throw new ConfigError(describeKey('/tls_key_path'), 'must be set together with tls_cert_path')
  return { certPath: c.tls_cert_path, keyPath: c.tls_key_path }
}

function resolveRateLimit (r: { max: number, window: string | number }, key: string): RateLimitConfig {
  const windowMs = parseDuration(r.window)
  // A zero window starts afresh on every request, which would never limit anything.
  if (windowMs <= 0) throw new ConfigError(`${key}.window`, 'expected a duration above zero')
  return { max: r.max, windowMs }
}

/** Trailing slashes dropped; a prefix of slashes only is `/` (and refused as a catch-all). */
function normalizePrefix (prefix: string): string {
  return prefix.replace(/\/+$/, '') || '/'
}

function resolveRoutes (c: RawConfig): GatewayConfig['routes'] {
  const seen = new Set<string>()
  return c.routes.map((r, i) => {
    const prefix = normalizePrefix(r.prefix)
    const key = `routes[${i}].prefix`
    if (prefix.split('/').some(seg => seg === '.' || seg === '..')) throw new ConfigError(key, `must not contain . or .. segments, got ${JSON.stringify(r.prefix)}`)
    // `//host` in a Location header (the prefix put in front of a redirect path) names another host.
    if (prefix.includes('//')) throw new ConfigError(key, `must not contain empty segments (//), got ${JSON.stringify(r.prefix)}`)
    if (seen.has(prefix)) throw new ConfigError(key, `duplicate prefix ${JSON.stringify(prefix)}`)
    // `/` would take every path the gateway does not serve itself, /admin and /auth included when they are off.
    const reserved = prefix === '/' ? '/' : RESERVED_PREFIXES.find(p => prefix === p || prefix.startsWith(p + '/'))
    if (reserved !== undefined || prefix === c.metrics_path) throw new ConfigError(key, `${JSON.stringify(prefix)} overlaps a path the gateway serves itself`)
    seen.add(prefix)
    let upstream: URL
    try {
      upstream = new URL(r.upstream)
    } catch {
      throw new ConfigError(`routes[${i}].upstream`, `an http:// or https:// URL, got ${JSON.stringify(r.upstream)}`)
    }
    if (upstream.search !== '' || upstream.hash !== '' || upstream.username !== '') throw new ConfigError(`routes[${i}].upstream`, `no query, fragment or credentials, got ${JSON.stringify(r.upstream)}`)
    const timeoutMs = parseDuration(r.timeout ?? '30s')
    if (timeoutMs <= 0) throw new ConfigError(`routes[${i}].timeout`, 'expected a duration above zero')
    return {
      prefix,
      upstream: upstream.origin,
      // Like @fastify/http-proxy: a path on the upstream URL is the default rewritePrefix.
      rewritePrefix: r.rewritePrefix ?? (upstream.pathname === '' ? '/' : upstream.pathname.replace(/(.)\/+$/, '$1')),
      websocket: r.websocket ?? false,
      timeoutMs,
      rateLimit: r.rate_limit === false ? false : (r.rate_limit !== undefined ? resolveRateLimit(r.rate_limit, `routes[${i}].rate_limit`) : undefined),
      auth: r.auth ?? 'required'
    }
  })
}

function resolveDevices (c: RawConfig): GatewayConfig['devices'] {
  const seen = new Set<string>()
  return c.devices.map((d, i) => {
    if ((d.token === undefined) === (d.token_sha256 === undefined)) {
      throw new ConfigError(`devices[${i}]`, 'needs exactly one of token or token_sha256')
    }
    if (seen.has(d.device_id)) throw new ConfigError(`devices[${i}].device_id`, `duplicate device ${JSON.stringify(d.device_id)}`)
    seen.add(d.device_id)
    return d
  })
}

/** Token lifetimes also accept days (`30d`). */
function positiveTtl (path: string, value: string | number): number {
  const ms = typeof value === 'string' && /d\s*$/.test(value) ? Math.round(parseFloat(value) * 86_400_000) : parseDuration(value)
  if (ms <= 0) throw new ConfigError(describeKey(`/${path}`), `expected a duration above zero, got ${JSON.stringify(value)}`)
  return ms
}

function isHmac (alg: string): boolean {
  return alg.startsWith('HS')
}

function resolveTokens (c: RawConfig): GatewayTokenConfig {
  const keys = c.jwt_private_key_path !== undefined || c.jwt_public_key_path !== undefined
  if (keys && c.jwt_secret !== undefined) {
    throw new ConfigError(describeKey('/jwt_secret'), 'set either jwt_secret or a key pair (jwt_private_key_path, jwt_public_key_path), not both')
  }
  if (keys && c.jwt_private_key_path === undefined) throw new ConfigError(describeKey('/jwt_private_key_path'), 'must be set together with jwt_public_key_path')
  if (keys && c.jwt_public_key_path === undefined) throw new ConfigError(describeKey('/jwt_public_key_path'), 'must be set together with jwt_private_key_path')
  const algorithm = c.jwt_algorithm ?? (keys ? 'RS256' : 'HS256')
  if (keys === isHmac(algorithm)) {
    const need = keys ? 'an asymmetric algorithm (RS, PS, ES, EdDSA) with a key pair' : 'an HS algorithm with a secret'
    throw new ConfigError(describeKey('/jwt_algorithm'), `expected ${need}, got ${JSON.stringify(algorithm)}`)
  }
  return {
    secret: c.jwt_secret,
    privateKeyPath: c.jwt_private_key_path,
    publicKeyPath: c.jwt_public_key_path,
    algorithm,
    accessTtlMs: positiveTtl('access_token_ttl', c.access_token_ttl),
    refreshTtlMs: positiveTtl('refresh_token_ttl', c.refresh_token_ttl),
    refreshStoreMax: c.refresh_store_max
  }
}

function resolveApiKeys (c: RawConfig): GatewayConfig['apiKeys'] {
  const seen = new Set<string>()
  return c.api_keys.map((k, i) => {
    const hash = k.key_sha256.toLowerCase()
    if (seen.has(hash)) throw new ConfigError(`api_keys[${i}].key_sha256`, 'duplicate key')
    seen.add(hash)
    return { key_sha256: hash, user_id: k.user_id, scopes: k.scopes ?? [] }
  })
}

function resolveExternalJwt (c: RawConfig): ExternalJwtConfig | undefined {
  const x = c.external_jwt
  if (x === undefined) return undefined
  if ((x.secret === undefined) === (x.public_key_path === undefined)) {
    throw new ConfigError('external_jwt', 'needs exactly one of secret or public_key_path')
  }
  const algorithms = x.algorithms.map((alg, i) => {
    const key = `external_jwt.algorithms[${i}]`
    if (alg.toLowerCase() === 'none') throw new ConfigError(key, '"none" is refused: it would accept unsigned tokens')
    if (!(JWT_ALGORITHMS as readonly string[]).includes(alg)) throw new ConfigError(key, `expected one of ${JWT_ALGORITHMS.join(', ')}, got ${JSON.stringify(alg)}`)
    // One key kind per verifier: an HMAC secret never meets an RS/ES token and a public key never an HS one.
    if (x.secret !== undefined && !isHmac(alg)) throw new ConfigError(key, `${alg} needs public_key_path; with a secret only HS algorithms are allowed`)
    if (x.public_key_path !== undefined && isHmac(alg)) throw new ConfigError(key, `${alg} needs a secret; with public_key_path only RS, PS, ES and EdDSA algorithms are allowed`)
    return alg as JwtAlgorithm
  })
  return { secret: x.secret, publicKeyPath: x.public_key_path, algorithms: [...new Set(algorithms)], issuer: x.issuer, audience: x.audience }
}
