import { Type, type Static } from '@sinclair/typebox'
import { DurationSchema } from './common.js'

export const RateLimitSchema = Type.Object({
  max: Type.Integer({ minimum: 1, description: 'requests allowed per window' }),
  window: DurationSchema
}, { additionalProperties: false })

export const RouteSchema = Type.Object({
  prefix: Type.String({ pattern: '^/[A-Za-z0-9._~!$&\'()*+,;=:@/-]*$', description: 'a path prefix starting with /' }),
  upstream: Type.String({ pattern: '^https?://[^\\s/]+(/\\S*)?$', description: 'an http:// or https:// URL' }),
  rewritePrefix: Type.Optional(Type.String({ pattern: '^/', description: 'a path starting with /' })),
  websocket: Type.Optional(Type.Boolean()),
  timeout: Type.Optional(DurationSchema),
  rate_limit: Type.Optional(Type.Union([RateLimitSchema, Type.Literal(false)])),
  auth: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('required')]))
}, { additionalProperties: false })

export const DeviceSchema = Type.Object({
  device_id: Type.String({ minLength: 1, maxLength: 128 }),
  token: Type.Optional(Type.String({ minLength: 1 })),
  token_sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'a hex sha256 of the token' })),
  user_id: Type.String({ minLength: 1 }),
  subscription_status: Type.Optional(Type.String())
}, { additionalProperties: false })

/** JWT signature algorithms the gateway knows; `none` is never one of them. */
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const
export type JwtAlgorithm = typeof JWT_ALGORITHMS[number]

/** Like DurationSchema, and also days (`30d`), for token lifetimes. */
export const TtlSchema = Type.Union([
  Type.Integer({ minimum: 0 }),
  Type.String({ pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)?\\s*$' })
], { description: 'a duration such as 15m, 1h, 30d, or plain milliseconds' })

export const ApiKeySchema = Type.Object({
  key_sha256: Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'a hex sha256 of the key' }),
  user_id: Type.String({ minLength: 1 }),
  scopes: Type.Optional(Type.Array(Type.String({ minLength: 1 })))
}, { additionalProperties: false })

export const ExternalJwtSchema = Type.Object({
  secret: Type.Optional(Type.String({ minLength: 32, description: 'an HMAC secret of at least 32 characters' })),
  public_key_path: Type.Optional(Type.String({ minLength: 1 })),
  algorithms: Type.Array(Type.String(), { minItems: 1, description: 'a non-empty list of algorithms' }),
  issuer: Type.Optional(Type.String({ minLength: 1 })),
  audience: Type.Optional(Type.String({ minLength: 1 }))
}, { additionalProperties: false })

export const AuthCacheSchema = Type.Object({
  max: Type.Optional(Type.Integer({ minimum: 1, description: 'an entry count of at least 1' })),
  ttl: Type.Optional(TtlSchema)
}, { additionalProperties: false })

const LogLevel = Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)))

/**
 * The whole gateway configuration, as merged from the YAML file and the environment.
 * Keys are the YAML names; `CONFIG_ENV` maps the environment variables onto them.
 */
export const ConfigSchema = Type.Object({
  listen_addr: Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[^:\\s]*):\\d{1,5}$', description: 'host:port or :port' }),
  tls_cert_path: Type.Optional(Type.String({ minLength: 1 })),
  tls_key_path: Type.Optional(Type.String({ minLength: 1 })),
  log_level: LogLevel,
  log_format: Type.Union([Type.Literal('json'), Type.Literal('text')]),
  metrics_enabled: Type.Boolean(),
  metrics_path: Type.String({ pattern: '^/', description: 'a path starting with /' }),
  backend_base_url: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'an http:// or https:// URL' })),
  backend_timeout: DurationSchema,
  max_streams: Type.Integer({ minimum: 1, maximum: 65535 }),
  max_frame_bytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
  hello_timeout: DurationSchema,
  ping_interval: DurationSchema,
  shutdown_timeout: DurationSchema,
  tcp_allow: Type.Array(Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[^:\\s,]+):\\d{1,5}$', description: 'host:port' })),
  default_upstream: Type.String({ minLength: 1 }),
  rate_limit: Type.Optional(RateLimitSchema),
  routes: Type.Array(RouteSchema),
  devices: Type.Array(DeviceSchema),
  admin_token: Type.Optional(Type.String({ minLength: 16, description: 'a token of at least 16 characters' })),
  jwt_secret: Type.Optional(Type.String({ minLength: 32, description: 'a secret of at least 32 characters' })),
  jwt_private_key_path: Type.Optional(Type.String({ minLength: 1 })),
  jwt_public_key_path: Type.Optional(Type.String({ minLength: 1 })),
  jwt_algorithm: Type.Optional(Type.Union(JWT_ALGORITHMS.map(a => Type.Literal(a)), { description: `one of ${JWT_ALGORITHMS.join(', ')}` })),
  access_token_ttl: TtlSchema,
  refresh_token_ttl: TtlSchema,
  refresh_store_max: Type.Integer({ minimum: 1 }),
  api_keys: Type.Array(ApiKeySchema),
  external_jwt: Type.Optional(ExternalJwtSchema),
  auth_cache: Type.Optional(AuthCacheSchema),
  pause_buffer_bytes: Type.Integer({ minimum: 1024, maximum: 256 * 1024 * 1024 }),
  jwt_refresh_grace: DurationSchema,
  docs_ui: Type.Boolean()
}, { additionalProperties: false })

export type RawConfig = Static<typeof ConfigSchema>
export type RateLimitConfig = { max: number, windowMs: number }

export interface RouteConfig {
  prefix: string
  upstream: string
  rewritePrefix: string
  websocket: boolean
  timeoutMs: number
  rateLimit: RateLimitConfig | false | undefined
  auth: 'none' | 'required'
}

export type DeviceConfig = Static<typeof DeviceSchema>
export type ApiKeyConfig = Static<typeof ApiKeySchema>

/** How the gateway signs its own access tokens, and how long its tokens live. */
export interface GatewayTokenConfig {
  /** HMAC secret; with neither a secret nor a key pair, a random secret is made at start-up. */
  secret?: string
  privateKeyPath?: string
  publicKeyPath?: string
  algorithm: JwtAlgorithm
  accessTtlMs: number
  refreshTtlMs: number
  /** Most refresh tokens kept at once (used ones included, for reuse detection). */
  refreshStoreMax: number
}

/** Verification of bearer JWTs issued by someone else. */
export interface ExternalJwtConfig {
  secret?: string
  publicKeyPath?: string
  algorithms: JwtAlgorithm[]
  issuer?: string
  audience?: string
}

/** The configuration after defaults and durations are resolved: what plugins read. */
export interface GatewayConfig {
  listen: { host: string, port: number }
  tls?: { certPath: string, keyPath: string }
  logLevel: RawConfig['log_level']
  logFormat: RawConfig['log_format']
  metrics: { enabled: boolean, path: string }
  backend?: { baseUrl: string, timeoutMs: number }
  backendTimeoutMs: number
  maxStreams: number
  maxFrameBytes: number
  helloTimeoutMs: number
  pingIntervalMs: number
  shutdownTimeoutMs: number
  tcpAllow: string[]
  defaultUpstream: string
  rateLimit?: RateLimitConfig
  routes: RouteConfig[]
  devices: DeviceConfig[]
  /** Bearer token of the /admin API; without one the admin routes do not exist. */
  adminToken?: string
  tokens: GatewayTokenConfig
  apiKeys: ApiKeyConfig[]
  externalJwt?: ExternalJwtConfig
  authCache: { max: number, ttlMs: number }
  /** Bytes a paused connection holds per direction before it stops reading. */
  pauseBufferBytes: number
  /** Time a `/ws` session whose credential only the client can renew (a JWT) has to send `auth_refresh`. */
  jwtRefreshGraceMs: number
  docsUi: boolean
}

/** Environment variable → config key. Environment wins over YAML. */
export const CONFIG_ENV: Record<string, keyof RawConfig> = {
  GATEWAY_LISTEN_ADDR: 'listen_addr',
  GATEWAY_TLS_CERT_PATH: 'tls_cert_path',
  GATEWAY_TLS_KEY_PATH: 'tls_key_path',
  GATEWAY_LOG_LEVEL: 'log_level',
  GATEWAY_LOG_FORMAT: 'log_format',
  GATEWAY_METRICS_ENABLED: 'metrics_enabled',
  GATEWAY_METRICS_PATH: 'metrics_path',
  BACKEND_BASE_URL: 'backend_base_url',
  BACKEND_TIMEOUT: 'backend_timeout',
  GATEWAY_MAX_STREAMS: 'max_streams',
  GATEWAY_MAX_FRAME_BYTES: 'max_frame_bytes',
  GATEWAY_HELLO_TIMEOUT: 'hello_timeout',
  GATEWAY_PING_INTERVAL: 'ping_interval',
  GATEWAY_SHUTDOWN_TIMEOUT: 'shutdown_timeout',
  GATEWAY_TCP_ALLOW: 'tcp_allow',
  GATEWAY_DEFAULT_UPSTREAM: 'default_upstream',
  GATEWAY_ADMIN_TOKEN: 'admin_token',
  GATEWAY_JWT_SECRET: 'jwt_secret',
  GATEWAY_JWT_PRIVATE_KEY_PATH: 'jwt_private_key_path',
  GATEWAY_JWT_PUBLIC_KEY_PATH: 'jwt_public_key_path',
  GATEWAY_JWT_ALGORITHM: 'jwt_algorithm',
  GATEWAY_ACCESS_TOKEN_TTL: 'access_token_ttl',
  GATEWAY_REFRESH_TOKEN_TTL: 'refresh_token_ttl',
  GATEWAY_REFRESH_STORE_MAX: 'refresh_store_max',
  GATEWAY_PAUSE_BUFFER_BYTES: 'pause_buffer_bytes',
  GATEWAY_JWT_REFRESH_GRACE: 'jwt_refresh_grace',
  GATEWAY_DOCS_UI: 'docs_ui'
}

/** Environment variables the gateway reads that are not config keys. */
export const NON_CONFIG_ENV = new Set(['GATEWAY_CONFIG'])

export const CONFIG_DEFAULTS: Partial<RawConfig> = {
  listen_addr: '0.0.0.0:8080',
  log_level: 'info',
  log_format: 'json',
  metrics_enabled: false,
  metrics_path: '/metrics',
  backend_timeout: '5s',
  max_streams: 16,
  max_frame_bytes: 1024 * 1024,
  hello_timeout: '10s',
  ping_interval: '30s',
  shutdown_timeout: '10s',
  tcp_allow: [],
  default_upstream: 'echo',
  routes: [],
  devices: [],
  access_token_ttl: '15m',
  refresh_token_ttl: '30d',
  refresh_store_max: 100_000,
  api_keys: [],
  pause_buffer_bytes: 1024 * 1024,
  jwt_refresh_grace: '30s',
  docs_ui: false
}
