import { timingSafeEqual } from 'node:crypto'
import { sha256Digest as digest } from '../../lib/hash.js'
import type { FastifyInstance } from 'fastify'
import { UnauthorizedError } from '../../lib/errors.js'
import { bearerToken } from '../../lib/auth/bearer.js'

/**
 * Every /admin route needs `Authorization: Bearer <GATEWAY_ADMIN_TOKEN>`, compared in
 * constant time (as digests, so the length does not show either). Without a configured
 * token the admin routes are not registered at all.
 */
export default async function adminAuth (fastify: FastifyInstance): Promise<void> {
  const token = fastify.config.adminToken
  if (token === undefined) return
  const expected = digest(token)
  fastify.addHook('onRequest', async (request) => {
    const presented = bearerToken(request.headers.authorization) ?? ''
    if (!timingSafeEqual(digest(presented), expected)) {
      const err = new UnauthorizedError('admin token required')
      Object.assign(err, { headers: { 'www-authenticate': 'Bearer realm="admin"' } })
      throw err
    }
  })
}
