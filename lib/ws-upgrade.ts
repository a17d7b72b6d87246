import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { WebSocket } from 'ws'

/*
 * A WebSocket upgrade goes through Fastify's router like any request, with a ServerResponse that
 * @fastify/websocket assigns to the socket so that hooks can still answer with an HTTP error.
 * Once the socket is taken over, that response, Fastify's reply and request and the upgrade's
 * IncomingMessage with its headers would live as long as the connection: about 2.6 KB of heap
 * per connection, a third of an idle /ws session's (heap snapshots at 2,000 sessions, see
 * docs/performance.md). These two functions let go of them.
 */

/**
 * Detaches the upgrade's ServerResponse from the socket, which otherwise holds it (and, through
 * Fastify's `finish` listener on it, the reply and the request) for the socket's life. Only once
 * nothing will answer over HTTP any more: after the last hook that may refuse the upgrade.
 */
export function detachUpgradeResponse (reply: FastifyReply): void {
  const res = reply.raw
  if (res.socket !== null) res.detachSocket(res.socket)
}

/**
 * @fastify/websocket's `error` listener on a route's WebSocket closes over the request and the
 * reply. It is replaced by one that does what its default error handler does (log the error,
 * terminate the socket) and keeps only the logger. Called first thing in a `wsHandler`, when that
 * listener is the only one.
 */
export function ownErrorListener (socket: WebSocket, log: FastifyBaseLogger): void {
  socket.removeAllListeners('error')
  socket.on('error', (err) => {
    log.error(err)
    socket.terminate()
  })
}
