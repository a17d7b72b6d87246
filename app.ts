import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { IncomingMessage } from 'node:http'
import type { FastifyPluginAsync, FastifyReply, FastifyServerOptions } from 'fastify'
import http from 'node:http'
import autoload from '@fastify/autoload'
import { errorBody, STATUS_CODES } from './lib/errors.js'
import { randomString } from './lib/random.js'
import { REDACT_PATHS, serializeRequest } from './lib/logger.js'
import type { GatewayConfig } from './schemas/config.js'

const here = dirname(fileURLToPath(import.meta.url))
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export interface AppOptions {
  /** A resolved config; without one the config plugin loads it from the environment and GATEWAY_CONFIG. */
  config?: GatewayConfig
}

/**
 * 128 random bits as 32 hex digits, like nginx's `$request_id`. Cheaper than `randomUUID()`,
 * which `callgrind` counted at about 4,000 instructions per proxied request (2% of the
 * gateway's), most of it formatting the UUID string piece by piece.
 */
function newRequestId (): string {
  return randomString(16, 'hex')
}

/** Takes a sane client `x-request-id` as the request's id, otherwise makes one. */
export function genReqId (req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId()
}

/** Server options shared by `npm start` (server.ts) and fastify-cli. */
export const options: FastifyServerOptions = {
  genReqId,
  requestIdHeader: false,
  trustProxy: false,
  // During shutdown, requests on open keep-alive connections are still served (those sockets
  // are closed as soon as they are idle), rather than answered with a 503 in Fastify's format.
  return503OnClosing: false,
  // fastify-cli (`-o`) sets the level; these keep credentials out of its logs too.
  logger: { redact: { paths: REDACT_PATHS, censor: '[REDACTED]' }, serializers: { req: serializeRequest } },
  // Requests the HTTP parser refuses (oversized headers, garbage) get the JSON error body too.
  clientErrorHandler (err: Error & { code?: string }, socket) {
    if (!socket.writable) return socket.destroy()
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400)
    const body = JSON.stringify(errorBody(STATUS_CODES[status], http.STATUS_CODES[status] ?? 'Bad Request'))
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  },
  routerOptions: { ignoreTrailingSlash: false },
  // Malformed URLs and bodies get the gateway's JSON error body too.
  frameworkErrors (error, _request, reply) {
    const status = error.statusCode ?? 400
    return (reply as FastifyReply).code(status).send(errorBody(status === 400 ? 'BAD_REQUEST' : 'INTERNAL_ERROR', error.message))
  }
}

/** The gateway: plugins/ first (each named, ordered by its dependencies), then routes/. */
const app: FastifyPluginAsync<AppOptions> = async (fastify, opts) => {
  await fastify.register(autoload, {
    dir: join(here, 'plugins'),
    options: { ...opts },
    forceESM: true,
    ignorePattern: /(^|\.)(d\.ts|map)$/
  })
  await fastify.register(autoload, {
    dir: join(here, 'routes'),
    options: { ...opts },
    forceESM: true,
    autoHooks: true,
    cascadeHooks: true,
    ignorePattern: /(^|\.)(d\.ts|map)$/
  })
}

export default app
