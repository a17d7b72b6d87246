import { randomUUID } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { IncomingMessage } from 'node:http'
import type { FastifyPluginAsync, FastifyReply, FastifyServerOptions } from 'fastify'
import autoload from '@fastify/autoload'
import type { GatewayConfig } from './schemas/config.js'

const here = dirname(fileURLToPath(import.meta.url))
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export interface AppOptions {
  /** A resolved config; without one the config plugin loads it from the environment and GATEWAY_CONFIG. */
  config?: GatewayConfig
}

/** Takes a sane client `x-request-id` as the request's id, otherwise makes one. */
export function genReqId (req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}

/** Server options shared by `npm start` (server.ts) and fastify-cli. */
export const options: FastifyServerOptions = {
  genReqId,
  requestIdHeader: false,
  trustProxy: false,
  return503OnClosing: true,
  routerOptions: { ignoreTrailingSlash: false },
  // Malformed URLs and bodies get the gateway's JSON error body too.
  frameworkErrors (error, _request, reply) {
    const status = error.statusCode ?? 400
    const body = { error: { code: status === 400 ? 'BAD_REQUEST' : 'INTERNAL_ERROR', message: error.message } }
    return (reply as FastifyReply).code(status).send(body)
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
