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
  devices: Type.Array(DeviceSchema)
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
  GATEWAY_DEFAULT_UPSTREAM: 'default_upstream'
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
  devices: []
}
