import fp from 'fastify-plugin'

/**
 * Returns the request id (taken from the client or generated, see app.ts genReqId) on every
 * response that Fastify sends. Proxied responses are written by lib/http-forward.ts (and the
 * WebSocket 101 by plugins/proxy.ts), which add it themselves: an onSend hook costs nothing on
 * that path, where an onRequest hook would run for every proxied request.
 */
export default fp(async (fastify) => {
  fastify.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id)
    done(null, payload)
  })
}, { name: 'request-id' })
