import fp from 'fastify-plugin'
import { createSessionMetrics, type SessionMetrics } from '../lib/session/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Metrics of `/ws` sessions and device auth, in `promRegistry`. */
    sessionMetrics: SessionMetrics
  }
}

export default fp(async (fastify) => {
  fastify.decorate<SessionMetrics>('sessionMetrics', createSessionMetrics(fastify.promRegistry))
}, { name: 'session-metrics', dependencies: ['metrics'] })
