import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { RateLimitedError } from '../lib/errors.js'
import { WindowCounter } from '../lib/rate-limit-store.js'
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
  interface FastifyContextConfig {
    rateLimit?: RouteRateLimit
  }
}

function retryIn (seconds: number): string {
  return seconds === 1 ? '1 second' : `${seconds} seconds`
}

/** The onRequest hook of one limited route: counts the client's request, answers 429 past `max`. */
function limiter (counter: WindowCounter, limit: RouteRateLimit): onRequestHookHandler {
  const max = String(limit.max)
  return function rateLimit (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const now = Date.now()
    const window = counter.hit(request.ip, now)
    const count = window.count
    const reset = Math.max(1, Math.ceil(counter.resetMs(window, now) / 1000))
    reply.header('x-ratelimit-limit', max)
    reply.header('x-ratelimit-remaining', String(Math.max(0, limit.max - count)))
    reply.header('x-ratelimit-reset', String(reset))
    if (count <= limit.max) return done()
    reply.header('retry-after', String(reset))
    done(new RateLimitedError(retryIn(reset)))
  }
}

/**
 * Per-client fixed-window rate limits, opted into by routes with `config: { rateLimit }`
 * (the gateway's own endpoints such as health and metrics never do). The same headers and
 * 429 answer as @fastify/rate-limit, which this replaced: its hook is async (a promise and
 * several awaits per request), which `npm run bench -- http` measured at 10-20% of the
 * gateway's CPU per proxied request; this hook is synchronous.
 */
export default fp(async (fastify) => {
  // One counter per group (a gateway route's HTTP and WebSocket routes share one), keyed by client address.
  const counters = new Map<string, WindowCounter>()
  const counterOf = (limit: RouteRateLimit): WindowCounter => {
    let counter = counters.get(limit.groupId)
    if (counter === undefined) {
      counter = new WindowCounter(limit.timeWindow)
      counters.set(limit.groupId, counter)
    }
    return counter
  }
  fastify.addHook('onRoute', (route) => {
    const limit = route.config?.rateLimit
    if (limit === undefined) return
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    route.onRequest = [...hooks, limiter(counterOf(limit), limit)]
  })
  fastify.decorate('rateLimitFor', (group: string, override?: RateLimitConfig | false) => {
    const limit = override === undefined ? fastify.config.rateLimit : override
    if (limit === false || limit === undefined) return undefined
    return { max: limit.max, timeWindow: limit.windowMs, groupId: group }
  })
}, { name: 'rate-limit', dependencies: ['config', 'errors'] })
