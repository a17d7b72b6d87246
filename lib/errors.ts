import createError from '@fastify/error'

// Every error code the gateway sends, HTTP and WebSocket alike. Documented in docs/errors.md.

export const UpstreamUnavailableError = createError('UPSTREAM_UNAVAILABLE', 'Upstream is unavailable: %s', 502)
export const UpstreamTimeoutError = createError('UPSTREAM_TIMEOUT', 'Upstream did not answer within %s ms', 504)
export const RateLimitedError = createError('RATE_LIMITED', 'Rate limit exceeded, retry in %s', 429)
export const UnauthorizedError = createError('UNAUTHORIZED', 'Authentication required: %s', 401)
export const TokenExpiredError = createError('TOKEN_EXPIRED', 'Access token expired', 401)
export const BadPathError = createError('BAD_PATH', 'Path is not allowed: %s', 400)
export const NotFoundError = createError('NOT_FOUND', 'Route %s %s not found', 404)
export const ConnectionNotFoundError = createError('CONNECTION_NOT_FOUND', 'Connection %s not found', 404)
export const IllegalTransitionError = createError('ILLEGAL_TRANSITION', 'Connection %s cannot go from %s to %s', 409)
export const InvalidRefreshTokenError = createError('INVALID_REFRESH_TOKEN', 'Refresh token is invalid: %s', 401)
export const AuthUnavailableError = createError('AUTH_UNAVAILABLE', 'Authentication backend unavailable: %s', 503)
export const BadRequestError = createError('BAD_REQUEST', 'Bad request: %s', 400)
export const UpgradeRequiredError = createError('UPGRADE_REQUIRED', '%s is a WebSocket endpoint: connect with a WebSocket upgrade', 426)

/** The one JSON shape of every HTTP error the gateway answers (docs/errors.md). */
export function errorBody (code: string, message: string): { error: { code: string, message: string } } {
  return { error: { code, message } }
}

/** Codes used for HTTP errors that do not come from the gateway's own error classes. */
export const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
  500: 'INTERNAL_ERROR',
  502: 'UPSTREAM_UNAVAILABLE',
  503: 'SERVICE_UNAVAILABLE',
  504: 'UPSTREAM_TIMEOUT'
}

/** Codes of `error` frames on the /ws endpoint (see docs/protocol.md). */
export const WsErrorCode = {
  BAD_FRAME: 'BAD_FRAME',
  NOT_AUTHENTICATED: 'NOT_AUTHENTICATED',
  ALREADY_AUTHENTICATED: 'ALREADY_AUTHENTICATED',
  MAX_STREAMS: 'MAX_STREAMS',
  STREAM_EXISTS: 'STREAM_EXISTS',
  UNKNOWN_STREAM: 'UNKNOWN_STREAM',
  UNKNOWN_UPSTREAM: 'UNKNOWN_UPSTREAM',
  UPSTREAM_DENIED: 'UPSTREAM_DENIED',
  UPSTREAM_ERROR: 'UPSTREAM_ERROR',
  STREAM_BUFFER_FULL: 'STREAM_BUFFER_FULL',
  // An `auth_refresh` that failed: the same codes as POST /auth/refresh.
  INVALID_REFRESH_TOKEN: 'INVALID_REFRESH_TOKEN',
  UNAUTHORIZED: 'UNAUTHORIZED',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  AUTH_UNAVAILABLE: 'AUTH_UNAVAILABLE',
  INTERNAL_ERROR: 'INTERNAL_ERROR'
} as const
// eslint-disable-next-line @typescript-eslint/no-redeclare -- the type and the value share the name on purpose
export type WsErrorCode = typeof WsErrorCode[keyof typeof WsErrorCode]

/** WebSocket close codes the gateway sends. 1005/1006 are never sent on the wire. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  BAD_GATEWAY: 1014
} as const
