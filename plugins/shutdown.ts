import fp from 'fastify-plugin'

/** How often idle keep-alive sockets are closed while shutting down. */
const SWEEP_MS = 50

/**
 * Once shutdown starts, keep-alive sockets are closed as soon as their in-flight
 * response is done; otherwise a client's idle keep-alive socket would hold `close()`
 * open until the grace delay. A sweep during shutdown costs nothing per request.
 */
export default fp(async (fastify) => {
  let sweep: NodeJS.Timeout | undefined
  fastify.addHook('preClose', async () => {
    sweep = setInterval(() => { fastify.server.closeIdleConnections() }, SWEEP_MS)
    sweep.unref()
  })
  fastify.addHook('onClose', async () => { clearInterval(sweep) })
}, { name: 'shutdown' })
