import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AuthResult } from '../../lib/auth/principal.js'
import { BadRequestError } from '../../lib/errors.js'
import { refusal } from '../../plugins/route-auth.js'
import { ErrorBodySchema } from '../../schemas/common.js'
import { TokenPairSchema, TokenRequestSchema, type TokenRequest } from '../../schemas/auth.js'

async function authenticate (fastify: Parameters<FastifyPluginAsyncTypebox>[0], body: TokenRequest): Promise<AuthResult> {
  const b = body as Partial<Record<'token' | 'api_key' | 'jwt' | 'device_id', string>>
  const kinds = [b.token, b.api_key, b.jwt].filter(v => v !== undefined).length
  if (kinds !== 1) throw new BadRequestError('send exactly one of device_id+token, api_key or jwt')
  const { authenticator } = fastify
  if (b.token !== undefined) return await authenticator.authenticateDevice(b.device_id ?? '', b.token)
  if (b.api_key !== undefined) return authenticator.authenticateApiKey(b.api_key)
  return authenticator.authenticateJwt(b.jwt as string)
}

/** POST /auth/token: any credentials the gateway accepts → its own access and refresh tokens. */
const token: FastifyPluginAsyncTypebox = async (fastify) => {
  const rateLimit = fastify.rateLimitFor('/auth')
  fastify.post('/token', {
    config: rateLimit !== undefined ? { rateLimit } : {},
    schema: {
      tags: ['auth'],
      summary: 'Exchange credentials for a gateway token pair',
      body: TokenRequestSchema,
      response: { 200: TokenPairSchema, 400: ErrorBodySchema, 401: ErrorBodySchema, 429: ErrorBodySchema, 503: ErrorBodySchema }
    }
  }, async (request) => {
    const result = await authenticate(fastify, request.body)
    if (!result.ok) throw refusal(result)
    const pair = fastify.authenticator.issueTokens(result.principal)
    request.log.info({ user_id: result.principal.user_id, device_id: result.principal.device_id, method: result.principal.method }, 'tokens issued')
    return { ...pair, token_type: 'Bearer' as const }
  })
}
export default token
