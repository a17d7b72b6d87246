import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HealthSchema } from '../schemas/health.js'

/** GET /health: every configured dependency as up/down; 503 when any is down. */
const health: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    logLevel: 'warn',
    schema: { response: { 200: HealthSchema, 503: HealthSchema } }
  }, async (_request, reply) => {
    const services = await fastify.health.check()
    const healthy = Object.values(services).every(s => s === 'up')
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'healthy' : 'unhealthy', services })
  })
}
export default health
