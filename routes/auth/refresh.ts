import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AuthUnavailableError, InvalidRefreshTokenError, TokenExpiredError, UnauthorizedError } from '../../lib/errors.js'
import { ErrorBodySchema } from '../../schemas/common.js'
import { RefreshRequestSchema, TokenPairSchema } from '../../schemas/auth.js'

/** POST /auth/refresh: a refresh token (single use) → a new pair, after re-authorizing the login. */
const refresh: FastifyPluginAsyncTypebox = async (fastify) => {
  const rateLimit = fastify.rateLimitFor('/auth')
  fastify.post('/refresh', {
    config: rateLimit !== undefined ? { rateLimit } : {},
    schema: {
      tags: ['auth'],
      summary: 'Rotate a refresh token into a new token pair',
      description: 'A refresh token works once; presenting a used one revokes every token of its login.',
      body: RefreshRequestSchema,
      response: { 200: TokenPairSchema, 400: ErrorBodySchema, 401: ErrorBodySchema, 429: ErrorBodySchema, 503: ErrorBodySchema }
    }
  }, async (request) => {
    const result = await fastify.authenticator.refreshTokens(request.body.refresh_token)
    if (result.ok) return { ...result.tokens, token_type: 'Bearer' as const }
    switch (result.code) {
      case 'INVALID_REFRESH_TOKEN': throw new InvalidRefreshTokenError(result.reason)
      case 'TOKEN_EXPIRED': throw new TokenExpiredError()
      case 'AUTH_UNAVAILABLE': throw new AuthUnavailableError(result.reason)
      default: throw new UnauthorizedError(result.reason)
    }
  })
}
export default refresh
