import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AuthUnavailableError, TokenExpiredError, UnauthorizedError } from '../lib/errors.js'
import type { AuthResult, Principal } from '../lib/auth/principal.js'
import { bearerToken } from '../lib/auth/bearer.js'

export type RouteAuthHook = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void

declare module 'fastify' {
  interface FastifyInstance {
    /** The hook that guards proxy routes with `auth: required`. */
    requireAuth: RouteAuthHook
  }
  interface FastifyRequest {
    /** Who made the request, once `requireAuth` accepted it; null on routes without auth. */
    principal: Principal | null
  }
}

/** Headers that carry identity to upstreams: only the gateway may set them. */
export const IDENTITY_HEADERS = ['x-user-id', 'x-device-id', 'x-auth-method']

/** The HTTP error for a refused credential: 401 `TOKEN_EXPIRED`, 401 `UNAUTHORIZED`, or 503. */
export function refusal (result: Exclude<AuthResult, { ok: true }>): Error {
  if (result.code === 'TOKEN_EXPIRED') return new TokenExpiredError()
  if (result.code === 'AUTH_UNAVAILABLE') return new AuthUnavailableError(result.reason)
  return new UnauthorizedError(result.reason)
}

/**
 * `auth: required` routes take a gateway access token or an external JWT
 * (`Authorization: Bearer`) or an API key (`X-API-Key`). The principal lands on
 * `request.principal`, and from there in the upstream's identity headers.
 */
export default fp(async (fastify) => {
  const { authenticator } = fastify
  fastify.decorateRequest('principal', null)
  // Synchronous (the checks are in memory): an async hook would cost a promise per proxied request.
  fastify.decorate<RouteAuthHook>('requireAuth', (request, _reply, done) => {
    const bearer = bearerToken(request.headers.authorization)
    const apiKey = request.headers['x-api-key']
    let result: AuthResult
    if (bearer !== undefined) {
      result = authenticator.authenticateBearer(bearer)
    } else if (typeof apiKey === 'string') {
      // Shared: a per-request check never starts a login, so the key's one principal serves.
      result = authenticator.authenticateApiKey(apiKey, true)
    } else {
      done(new UnauthorizedError('send Authorization: Bearer <token> or X-API-Key'))
      return
    }
    if (!result.ok) {
      done(refusal(result))
      return
    }
    request.principal = result.principal
    done()
  })
}, { name: 'route-auth', dependencies: ['config', 'auth'] })
