import type { FastifyPluginAsync } from 'fastify'
import { compactString } from '../lib/session/session.js'
import { UpgradeRequiredError } from '../lib/errors.js'

/** GET /ws: the gateway's own multiplexing endpoint (docs/protocol.md). */
const ws: FastifyPluginAsync = async (fastify) => {
  const rateLimit = fastify.rateLimitFor('/ws')
  fastify.route({
    method: 'GET',
    url: '/ws',
    config: rateLimit !== undefined ? { rateLimit } : {},
    // A plain HTTP GET gets a JSON error saying what the endpoint wants.
    handler: async () => { throw new UpgradeRequiredError('/ws') },
    wsHandler: (socket, request) => {
      // The request lives as long as the socket (@fastify/websocket keeps it), and so does its id.
      compactString(request.id)
      fastify.sessions.accept(socket, { log: request.log, remoteAddress: request.ip, transport: request.raw.socket })
    }
  })
}
export default ws
