import type { FastifyPluginAsync } from 'fastify'
import { UpgradeRequiredError } from '../lib/errors.js'
import { keepUpgradeResponse, releaseUpgrade } from '../lib/ws-upgrade.js'

/** GET /ws: the gateway's own multiplexing endpoint (docs/protocol.md). */
const ws: FastifyPluginAsync = async (fastify) => {
  const rateLimit = fastify.rateLimitFor('/ws')
  fastify.route({
    method: 'GET',
    url: '/ws',
    config: rateLimit !== undefined ? { rateLimit } : {},
    // A plain HTTP GET gets a JSON error saying what the endpoint wants.
    handler: async () => { throw new UpgradeRequiredError('/ws') },
    // So that a live session keeps neither the upgrade's request nor its response (lib/ws-upgrade.ts).
    preHandler: keepUpgradeResponse,
    wsHandler: (socket, request) => {
      releaseUpgrade(socket, request)
      fastify.sessions.accept(socket, { log: request.log, remoteAddress: request.ip, transport: request.raw.socket })
    }
  })
}
export default ws
