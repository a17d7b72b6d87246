import type { FastifyPluginAsync } from 'fastify'

/** GET /ws: the gateway's own multiplexing endpoint (docs/protocol.md). */
const ws: FastifyPluginAsync = async (fastify) => {
  const rateLimit = fastify.rateLimitFor('/ws')
  fastify.get('/ws', {
    websocket: true,
    config: rateLimit !== undefined ? { rateLimit } : {}
  }, (socket, request) => {
    fastify.sessions.accept(socket, { log: request.log, remoteAddress: request.ip })
  })
}
export default ws
