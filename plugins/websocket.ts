import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { IncomingMessage } from 'node:http'
import type { WebSocket } from 'ws'
import { CloseCode } from '../lib/errors.js'

const kAlive = Symbol('alive')
type TrackedSocket = WebSocket & { [kAlive]?: boolean }

/** One function for every socket (`this` is the socket), not a closure and its scope per connection. */
function onPong (this: TrackedSocket): void {
  this[kAlive] = true
}

/** How long shutdown waits for relayed sockets to finish their close handshake. */
const RELAY_SHUTDOWN_MS = 2000

/** A proxied WebSocket relayed as bytes (lib/ws-relay.ts), kept alive and closed on shutdown like `ws` clients. */
export interface RelayedSocket {
  /** Pings the client; drops it when it missed the previous ping. */
  heartbeat: () => void
  stop: (code: number, reason: string) => void
  terminate: () => void
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Live relayed WebSockets; each removes itself when both of its sockets have closed. */
    websocketRelays: Set<RelayedSocket>
    /** Shutdown has begun: a relay that starts now is closed (1001) at once. */
    websocketShuttingDown: boolean
  }
}

/** Tells every relayed client the server is going away, and waits (bounded) for their close handshakes. */
async function closeRelays (relays: Set<RelayedSocket>): Promise<void> {
  for (const relay of relays) relay.stop(CloseCode.GOING_AWAY, 'server shutting down')
  const deadline = Date.now() + RELAY_SHUTDOWN_MS
  while (relays.size > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  for (const relay of relays) relay.terminate()
}

/** A real WebSocket upgrade: GET with `Upgrade: websocket` and `Connection: upgrade` (RFC 6455 §4.1). */
function isWebSocketUpgrade (req: IncomingMessage): boolean {
  const { upgrade, connection } = req.headers
  return req.method === 'GET' &&
    typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket' &&
    typeof connection === 'string' && /(^|,)\s*upgrade\s*(,|$)/i.test(connection)
}

/**
 * @fastify/websocket owns the server's `upgrade` event for every WebSocket endpoint,
 * the gateway's own and the proxied ones, so that nothing else fights over it.
 * Proxy routes claim upgrades with the `upgrade: 'websocket'` route constraint,
 * beside the plain HTTP routes of the proxy on the same path.
 */
export default fp(async (fastify) => {
  fastify.addConstraintStrategy({
    name: 'upgrade',
    mustMatchWhenDerived: false,
    storage () {
      const handlers = new Map<string, unknown>()
      return {
        get: (value: string) => (handlers.get(value) ?? null) as never,
        set: (value: string, store: unknown) => { handlers.set(value, store) }
      }
    },
    deriveConstraint: (req: IncomingMessage) => isWebSocketUpgrade(req) ? 'websocket' : undefined as unknown as string
  })

  const relays = new Set<RelayedSocket>()
  fastify.decorate('websocketRelays', relays)
  fastify.decorate('websocketShuttingDown', false)
  await fastify.register(websocket, {
    // No `errorHandler`: /ws replaces @fastify/websocket's error listener with its default's
    // behaviour (lib/ws-upgrade.ts, releaseUpgrade), which a custom handler here would not reach.
    options: { maxPayload: fastify.config.maxFrameBytes, clientTracking: true },
    // Shutdown: every client learns the server is going away (1001), not an abnormal drop.
    preClose (done) {
      fastify.websocketShuttingDown = true
      for (const client of fastify.websocketServer.clients) client.close(CloseCode.GOING_AWAY, 'server shutting down')
      closeRelays(relays).finally(() => { fastify.websocketServer.close(() => done()) })
    }
  })

  // One interval pings every client, `ws` and relayed; a peer that missed the previous pong is dead.
  const wss = fastify.websocketServer
  wss.on('connection', (socket: TrackedSocket) => {
    socket[kAlive] = true
    socket.on('pong', onPong)
  })
  const timer = setInterval(() => {
    for (const socket of wss.clients as Set<TrackedSocket>) {
      if (socket[kAlive] === false) {
        socket.terminate()
        continue
      }
      socket[kAlive] = false
      socket.ping()
    }
    for (const relay of relays) relay.heartbeat()
  }, fastify.config.pingIntervalMs)
  timer.unref()
  fastify.addHook('onClose', async () => { clearInterval(timer) })
}, { name: 'websocket', dependencies: ['config'] })
