import fp from 'fastify-plugin'
import { ConfigError } from '../lib/config.js'
import { CloseCode } from '../lib/errors.js'
import { SessionManager } from '../lib/session/manager.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every `/ws` connection and session; `routes/ws.ts` hands each upgraded socket to `sessions.accept`. */
    sessions: SessionManager
  }
}

export default fp(async (fastify) => {
  const { config } = fastify
  const sessions = new SessionManager({
    limits: {
      maxStreams: config.maxStreams,
      helloTimeoutMs: config.helloTimeoutMs,
      defaultUpstream: config.defaultUpstream,
      // At least one whole frame's bytes fit before the upstream is ready.
      streamBufferBytes: config.maxFrameBytes,
      pausedBufferBytes: config.pauseBufferBytes,
      accessTtlMs: config.tokens.accessTtlMs,
      jwtRefreshGraceMs: config.jwtRefreshGraceMs,
      highWaterBytes: 512 * 1024,
      lowWaterBytes: 128 * 1024
    },
    authenticator: fastify.authenticator,
    connections: fastify.connections,
    upstreams: fastify.upstreams,
    metrics: fastify.sessionMetrics,
    tokenRefreshes: fastify.tokenRefreshes
  })
  fastify.decorate('sessions', sessions)

  // Checked once every plugin had its chance to register an upstream kind.
  fastify.addHook('onReady', async () => {
    if (fastify.upstreams.get(config.defaultUpstream) === undefined) {
      throw new ConfigError('default_upstream (GATEWAY_DEFAULT_UPSTREAM)', `names ${JSON.stringify(config.defaultUpstream)}, which is not an upstream; known: ${fastify.upstreams.names().join(', ')}`)
    }
  })
  fastify.addHook('onClose', async () => { sessions.closeAll(CloseCode.GOING_AWAY, 'server shutting down') })
}, { name: 'sessions', dependencies: ['config', 'auth', 'registry', 'upstreams', 'session-metrics', 'websocket'] })
