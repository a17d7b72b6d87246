import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { RateLimitedError } from '../lib/errors.js'
import type { RateLimitConfig } from '../schemas/config.js'

export interface RouteRateLimit { max: number, timeWindow: number }

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The route `config.rateLimit` value for a route-level override (`false` turns it off);
     * without an override, the top-level `rate_limit`; `undefined` means no limit.
     */
    rateLimitFor: (override?: RateLimitConfig | false) => RouteRateLimit | undefined
  }
}

// Routes opt in with `config: { rateLimit }`; the gateway's own endpoints (health, metrics) never do.
export default fp(async (fastify) => {
  await fastify.register(rateLimit, {
    global: false,
    errorResponseBuilder (_request, context) {
      return new RateLimitedError(context.after)
    }
  })
  fastify.decorate('rateLimitFor', (override?: RateLimitConfig | false) => {
    const limit = override === undefined ? fastify.config.rateLimit : override
    if (limit === false || limit === undefined) return undefined
    return { max: limit.max, timeWindow: limit.windowMs }
  })
}, { name: 'rate-limit', dependencies: ['config', 'errors'] })
