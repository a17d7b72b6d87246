import type { FastifyPluginAsync } from 'fastify'
import { UpgradeRequiredError } from '../lib/errors.js'
import { detachUpgradeResponse, ownErrorListener } from '../lib/ws-upgrade.js'

/** GET /ws: the gateway's own multiplexing endpoint (docs/protocol.md). */
const ws: FastifyPluginAsync = async (fastify) => {
  const rateLimit = fastify.rateLimitFor('/ws')
  fastify.route({
    method: 'GET',
    url: '/ws',
    config: rateLimit !== undefined ? { rateLimit } : {},
    // A plain HTTP GET gets a JSON error saying what the endpoint wants.
    handler: async () => { throw new UpgradeRequiredError('/ws') },
    // The last hook before the upgrade: nothing answers over HTTP after it (lib/ws-upgrade.ts).
    preHandler: (request, reply, done) => {
      if (request.ws) detachUpgradeResponse(reply)
      done()
    },
    wsHandler: (socket, request) => {
      ownErrorListener(socket, request.log)
      fastify.sessions.accept(socket, { log: request.log, remoteAddress: request.ip, transport: request.raw.socket })
    }
  })
}
export default ws
