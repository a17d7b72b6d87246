import fp from 'fastify-plugin'

/** Returns the request id (taken from the client or generated, see app.ts genReqId) on every response. */
export default fp(async (fastify) => {
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
}, { name: 'request-id' })
