import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CloseCode } from '../../lib/errors.js'
import { ErrorBodySchema } from '../../schemas/common.js'
import { ConnectionListSchema, ConnectionParamsSchema, ConnectionQuerySchema, ConnectionSchema } from '../../schemas/admin.js'

const security = [{ adminToken: [] }]
const errors = { 401: ErrorBodySchema, 404: ErrorBodySchema }

/** /admin/connections: list, inspect, pause, resume and stop live connections. */
const connections: FastifyPluginAsyncTypebox = async (fastify) => {
  if (fastify.config.adminToken === undefined) return
  const registry = fastify.connections

  fastify.get('/connections', {
    schema: {
      tags: ['admin'],
      security,
      summary: 'List live connections, filtered, a page at a time',
      querystring: ConnectionQuerySchema,
      response: { 200: ConnectionListSchema, 400: ErrorBodySchema, 401: ErrorBodySchema }
    }
  }, async (request) => registry.list(request.query))

  fastify.get('/connections/:id', {
    schema: { tags: ['admin'], security, summary: 'One connection', params: ConnectionParamsSchema, response: { 200: ConnectionSchema, ...errors } }
  }, async (request) => registry.require(request.params.id).info())

  fastify.post('/connections/:id/pause', {
    schema: {
      tags: ['admin'],
      security,
      summary: 'Pause a running connection: the socket stays open, data is held',
      params: ConnectionParamsSchema,
      response: { 200: ConnectionSchema, ...errors, 409: ErrorBodySchema }
    }
  }, async (request) => {
    const connection = registry.pause(request.params.id)
    request.log.info({ connection_id: connection.id }, 'admin paused a connection')
    return connection.info()
  })

  fastify.post('/connections/:id/resume', {
    schema: {
      tags: ['admin'],
      security,
      summary: 'Resume a paused connection: held data is delivered in order',
      params: ConnectionParamsSchema,
      response: { 200: ConnectionSchema, ...errors, 409: ErrorBodySchema }
    }
  }, async (request) => {
    const connection = registry.resume(request.params.id)
    request.log.info({ connection_id: connection.id }, 'admin resumed a connection')
    return connection.info()
  })

  fastify.delete('/connections/:id', {
    schema: {
      tags: ['admin'],
      security,
      summary: 'Stop a connection (close 1008 stopped_by_admin)',
      params: ConnectionParamsSchema,
      response: { 200: ConnectionSchema, ...errors, 409: ErrorBodySchema }
    }
  }, async (request) => {
    const connection = registry.stop(request.params.id, CloseCode.POLICY_VIOLATION, 'stopped_by_admin')
    request.log.info({ connection_id: connection.id }, 'admin stopped a connection')
    return connection.info()
  })
}
export default connections
