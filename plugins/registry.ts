import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { CONNECTION_STATES, ConnectionRegistry } from '../lib/registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every live `/ws` session and proxied WebSocket connection (see lib/registry.ts). */
    connections: ConnectionRegistry
  }
}

export default fp(async (fastify) => {
  const registry = new ConnectionRegistry(fastify.log.child({ component: 'connections' }))
  fastify.decorate('connections', registry)

  // Counted when scraped: the registry is the only truth about states.
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'httvps_gateway_connections',
    help: 'Live connections (/ws sessions and proxied WebSockets) by state',
    labelNames: ['state'] as const,
    registers: [fastify.promRegistry],
    collect () {
      const counts = registry.countByState()
      for (const state of CONNECTION_STATES) if (state !== 'closed') this.set({ state }, counts[state])
    }
  })
}, { name: 'registry', dependencies: ['config', 'metrics'] })
