import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { WebSocket } from 'ws'

/*
 * A WebSocket upgrade goes through Fastify's router like any request, with a ServerResponse that
 * @fastify/websocket assigns to the socket so that hooks can still answer with an HTTP error.
 * Once the socket is taken over, that response, Fastify's reply and request and the upgrade's
 * IncomingMessage with its headers would live as long as the connection: about 2.6 KB of heap
 * per connection, a third of an idle /ws session's (docs/performance.md, "What an idle session
 * holds"). These functions let go of them.
 */

/**
 * Detaches the upgrade's ServerResponse from the socket, which otherwise holds it (and, through
 * Fastify's `finish` listener on it, the reply and the request) for the socket's life. Only once
 * the socket is taken over: a response detached earlier could no longer answer a refusal.
 */
export function detachUpgradeResponse (res: ServerResponse): void {
  if (res.socket !== null) res.detachSocket(res.socket)
}

/** The response of each upgrade on its way to a `wsHandler`; an entry goes with its request. */
const pending = new WeakMap<IncomingMessage, ServerResponse>()

/**
 * A WebSocket route's `preHandler`: a `wsHandler` is not given the reply, so its response is
 * kept here for `releaseUpgrade` (an upgrade refused before or by the handshake never gets there).
 */
export function keepUpgradeResponse (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (request.ws) pending.set(request.raw, reply.raw)
  done()
}

/**
 * First thing in a `wsHandler` after `keepUpgradeResponse`: detaches the upgrade's response and
 * replaces @fastify/websocket's `error` listener on the WebSocket, which closes over the request
 * and the reply, with one that does what its default error handler does (log the error, terminate
 * the socket) and keeps only the logger. That listener is the WebSocket's only one here
 * (plugins/websocket.ts adds none and sets no `errorHandler`, which this would bypass).
 */
export function releaseUpgrade (socket: WebSocket, request: FastifyRequest): void {
  // The listener below closes over these two only, not over the request.
  const log = request.log
  const res = pending.get(request.raw)
  if (res !== undefined) {
    pending.delete(request.raw)
    detachUpgradeResponse(res)
  }
  socket.removeAllListeners('error')
  socket.on('error', (err) => {
    log.error(err)
    socket.terminate()
  })
}
