import fp from 'fastify-plugin'
import { createUpstreamRegistry, type UpstreamRegistry } from '../lib/upstreams/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The kinds of upstream `/ws` streams can open; register more with `upstreams.register(kind)`. */
    upstreams: UpstreamRegistry
  }
}

export default fp(async (fastify) => {
  const registry = createUpstreamRegistry({ allow: fastify.config.tcpAllow })
  fastify.decorate<UpstreamRegistry>('upstreams', registry)
  fastify.addHook('onClose', async () => { await registry.close() })
}, { name: 'upstreams', dependencies: ['config'] })
