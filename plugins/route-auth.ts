import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { UnauthorizedError } from '../lib/errors.js'

export type RouteAuthHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    /** The hook that guards proxy routes with `auth: required`. */
    requireAuth: RouteAuthHook
  }
}

/** Headers that carry identity to upstreams: only the gateway may set them. */
export const IDENTITY_HEADERS = ['x-user-id', 'x-device-id', 'x-auth-method']

/**
 * Secure by default: until a route authentication method is configured, a route with
 * `auth: required` refuses every request, so nothing is exposed by accident.
 */
export default fp(async (fastify) => {
  fastify.decorate<RouteAuthHook>('requireAuth', async () => {
    throw new UnauthorizedError('this route requires authentication and no method is configured')
  })
}, { name: 'route-auth', dependencies: ['config'] })
