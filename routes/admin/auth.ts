import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { PrincipalFilter } from '../../lib/auth/cache.js'
import { ErrorBodySchema } from '../../schemas/common.js'
import { InvalidateRequestSchema, InvalidateResultSchema } from '../../schemas/admin.js'

/** POST /admin/auth/invalidate: forget cached checks of a user or device and re-check its live connections now. */
const auth: FastifyPluginAsyncTypebox = async (fastify) => {
  if (fastify.config.adminToken === undefined) return
  const { authenticator, connections } = fastify

  fastify.post('/auth/invalidate', {
    schema: {
      tags: ['admin'],
      security: [{ adminToken: [] }],
      summary: 'Drop cached credential checks of a user or device and re-check its live connections',
      body: InvalidateRequestSchema,
      response: { 200: InvalidateResultSchema, 400: ErrorBodySchema, 401: ErrorBodySchema }
    }
  }, async (request) => {
    const body = request.body as { user_id?: string, device_id?: string }
    const filter: PrincipalFilter = body.user_id !== undefined ? { user_id: body.user_id } : { device_id: body.device_id as string }
    const dropped = authenticator.invalidate(filter)
    const summary = await connections.recheck(filter, async (principal) => await authenticator.reauthorize(principal))
    request.log.info({ ...filter, dropped, ...summary }, 'admin invalidated credentials')
    return {
      cache_entries_dropped: dropped,
      connections_checked: summary.checked,
      connections_stopped: summary.stopped,
      refresh_required: summary.refresh_required,
      check_failed: summary.failed
    }
  })
}
export default auth
