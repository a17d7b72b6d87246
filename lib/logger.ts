import type { FastifyServerOptions } from 'fastify'
import type { GatewayConfig } from '../schemas/config.js'

const SECRET_QUERY = /([?&](?:token|access_token|refresh_token|api_key|apikey|key)=)[^&#]*/gi

/** Drops secrets a client may put in a query string before the URL is logged. */
export function redactUrl (url: string | undefined): string | undefined {
  return url?.replace(SECRET_QUERY, '$1[REDACTED]')
}

/** Paths pino blanks in any log object: credentials never reach the logs. */
export const REDACT_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]',
  'headers.authorization', 'headers.cookie', 'headers["x-api-key"]',
  'token', 'api_key', 'access_token', 'refresh_token', '*.token', '*.api_key', '*.access_token', '*.refresh_token'
]

/** What a request log line says about the request: never headers, and no secrets from the query. */
export function serializeRequest (req: { method?: string, url?: string, host?: string, ip?: string, socket?: { remotePort?: number } }): Record<string, unknown> {
  return { method: req.method, url: redactUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort }
}

export function loggerOptions (config: Pick<GatewayConfig, 'logLevel' | 'logFormat'>): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: { req: serializeRequest },
    ...(config.logFormat === 'text'
      ? { transport: { target: 'pino-pretty', options: { colorize: false, translateTime: 'SYS:standard', ignore: 'pid,hostname' } } }
      : {})
  }
}
