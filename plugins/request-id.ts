import fp from 'fastify-plugin'

/** Returns the request id (taken from the client or generated, see app.ts genReqId) on every response. */
export default fp(async (fastify) => {
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
}, { name: 'request-id' })
