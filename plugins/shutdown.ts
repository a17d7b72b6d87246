import fp from 'fastify-plugin'

/**
 * Once shutdown starts, responses still in flight carry `Connection: close`, so their
 * keep-alive sockets end with them and the server can finish closing; otherwise a
 * client's idle keep-alive socket would hold `close()` open until the grace delay.
 */
export default fp(async (fastify) => {
  let closing = false
  fastify.addHook('preClose', async () => { closing = true })
  fastify.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close')
    return payload
  })
  fastify.addHook('onResponse', async () => {
    if (closing) fastify.server.closeIdleConnections()
  })
}, { name: 'shutdown' })
