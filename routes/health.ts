import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HealthSchema } from '../schemas/health.js'

/** How long one round of checks answers every /health request (so a flood of them cannot flood the dependencies). */
const CACHE_MS = 1000

/** GET /health: every configured dependency as up/down; 503 when any is down. */
const health: FastifyPluginAsyncTypebox = async (fastify) => {
  let current: { at: number, result: Promise<Record<string, 'up' | 'down'>> } | undefined

  const services = async (): Promise<Record<string, 'up' | 'down'>> => {
    const now = Date.now()
    // One round at a time: requests while it runs, and for a second after, share it.
    if (current === undefined || now - current.at > CACHE_MS) current = { at: now, result: fastify.health.check() }
    return await current.result
  }

  fastify.get('/health', {
    logLevel: 'warn',
    schema: { response: { 200: HealthSchema, 503: HealthSchema } }
  }, async (_request, reply) => {
    const result = await services()
    const healthy = Object.values(result).every(s => s === 'up')
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'healthy' : 'unhealthy', services: result })
  })
}
export default health
