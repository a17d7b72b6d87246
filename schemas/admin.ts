import { Type, type Static } from '@sinclair/typebox'

// Spelt out (not mapped from CONNECTION_STATES) so that Static<> keeps the literal types.
export const ConnectionStateSchema = Type.Union([
  Type.Literal('initial'), Type.Literal('authorizing'), Type.Literal('running'), Type.Literal('paused'),
  Type.Literal('refreshing'), Type.Literal('stopping'), Type.Literal('closed')
])

/** One connection as the admin API shows it. */
export const ConnectionSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  kind: Type.Union([Type.Literal('session'), Type.Literal('ws_proxy')]),
  route: Type.String(),
  remote_address: Type.String(),
  user_id: Type.Union([Type.String(), Type.Null()]),
  device_id: Type.Union([Type.String(), Type.Null()]),
  method: Type.Union([Type.Literal('device'), Type.Literal('api_key'), Type.Literal('jwt'), Type.Null()]),
  state: ConnectionStateSchema,
  created_at: Type.String({ format: 'date-time' }),
  last_active_at: Type.String({ format: 'date-time' }),
  bytes_in: Type.Integer({ minimum: 0, description: 'bytes received from the client' }),
  bytes_out: Type.Integer({ minimum: 0, description: 'bytes sent to the client' }),
  messages_in: Type.Integer({ minimum: 0 }),
  messages_out: Type.Integer({ minimum: 0 }),
  open_streams: Type.Integer({ minimum: 0 })
})
export type ConnectionBody = Static<typeof ConnectionSchema>

export const ConnectionQuerySchema = Type.Object({
  user_id: Type.Optional(Type.String({ minLength: 1 })),
  device_id: Type.Optional(Type.String({ minLength: 1 })),
  state: Type.Optional(ConnectionStateSchema),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  cursor: Type.Optional(Type.String({ maxLength: 64, description: 'next_cursor of the previous page' }))
})
export type ConnectionQueryBody = Static<typeof ConnectionQuerySchema>

export const ConnectionListSchema = Type.Object({
  connections: Type.Array(ConnectionSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' })
})

export const ConnectionParamsSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64 })
})

/** `POST /admin/auth/invalidate`: a user or a device. */
export const InvalidateRequestSchema = Type.Union([
  Type.Object({ user_id: Type.String({ minLength: 1 }) }, { title: 'A user' }),
  Type.Object({ device_id: Type.String({ minLength: 1 }) }, { title: 'A device' })
])
export type InvalidateRequest = Static<typeof InvalidateRequestSchema>

export const InvalidateResultSchema = Type.Object({
  cache_entries_dropped: Type.Integer({ minimum: 0 }),
  connections_checked: Type.Integer({ minimum: 0 }),
  connections_stopped: Type.Integer({ minimum: 0 }),
  refresh_required: Type.Integer({ minimum: 0, description: 'connections whose owner asked the client for a new credential' }),
  check_failed: Type.Integer({ minimum: 0, description: 'connections left running because the authority could not be asked' })
})
export type InvalidateResult = Static<typeof InvalidateResultSchema>
