import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { RateLimitedError } from '../lib/errors.js'
import { SharedWindowStore } from '../lib/rate-limit-store.js'
import type { RateLimitConfig } from '../schemas/config.js'

export interface RouteRateLimit { max: number, timeWindow: number, groupId: string }

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The route `config.rateLimit` value for one gateway route (`group`, e.g. its prefix):
     * a route-level override (`false` turns it off), else the top-level `rate_limit`;
     * `undefined` means no limit. Every Fastify route of a group shares one bucket per client.
     */
    rateLimitFor: (group: string, override?: RateLimitConfig | false) => RouteRateLimit | undefined
  }
}

// Routes opt in with `config: { rateLimit }`; the gateway's own endpoints (health, metrics) never do.
export default fp(async (fastify) => {
  await fastify.register(rateLimit, {
    global: false,
    store: SharedWindowStore as never,
    errorResponseBuilder (_request, context) {
      return new RateLimitedError(context.after)
    }
  })
  fastify.decorate('rateLimitFor', (group: string, override?: RateLimitConfig | false) => {
    const limit = override === undefined ? fastify.config.rateLimit : override
    if (limit === false || limit === undefined) return undefined
    return { max: limit.max, timeWindow: limit.windowMs, groupId: `|${group}` }
  })
}, { name: 'rate-limit', dependencies: ['config', 'errors'] })
