import { Type, type Static } from '@sinclair/typebox'

/**
 * Frames of the gateway's own WebSocket endpoint `/ws` (docs/protocol.md).
 * Every frame is one JSON text message with a `type`, except binary `stream_data`, whose
 * header is read and written in lib/session/framing.ts.
 */

/** Chosen by the client; echoed back in the same form (a string stays a string). */
export const StreamIdSchema = Type.Union([
  Type.String({ minLength: 1, maxLength: 64 }),
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
], { description: 'a string of 1-64 characters (UTF-16 code units) or a non-negative integer' })
export type StreamId = Static<typeof StreamIdSchema>

/**
 * Standard base64 with padding; the length being a multiple of 4 is checked in lib/session/framing.ts,
 * which also checks client payloads against this pattern without running it over every payload.
 */
export const Base64Schema = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', contentEncoding: 'base64', description: 'standard base64 with padding' })

// Client → gateway. Unknown fields are refused, so that a misspelt optional field is not ignored.

/**
 * Exactly one kind of credentials: `device_id` with `token`, `api_key`, or `access_token`
 * (a gateway access token or an external JWT). Which fields go together is checked in
 * lib/session/framing.ts, so that the error names the missing or extra field.
 */
export const HelloFrameSchema = Type.Object({
  type: Type.Literal('hello'),
  device_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  api_key: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  access_token: Type.Optional(Type.String({ minLength: 1, maxLength: 16384 }))
}, { additionalProperties: false })
export type HelloFrame = Static<typeof HelloFrameSchema>

/** Exchanges a refresh token for a new pair on a live session (answered with `auth_result` or `error`). */
export const AuthRefreshFrameSchema = Type.Object({
  type: Type.Literal('auth_refresh'),
  refresh_token: Type.String({ minLength: 1, maxLength: 4096 })
}, { additionalProperties: false })
export type AuthRefreshFrame = Static<typeof AuthRefreshFrameSchema>

export const StreamOpenFrameSchema = Type.Object({
  type: Type.Literal('stream_open'),
  stream_id: StreamIdSchema,
  upstream: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 262, description: 'host:port, for the tcp upstream' })),
  binary: Type.Optional(Type.Boolean({ description: 'the upstream\'s bytes come as binary stream_data messages instead of JSON frames' }))
}, { additionalProperties: false })
export type StreamOpenFrame = Static<typeof StreamOpenFrameSchema>

export const StreamDataFrameSchema = Type.Object({
  type: Type.Literal('stream_data'),
  stream_id: StreamIdSchema,
  data: Base64Schema
}, { additionalProperties: false })
export type StreamDataFrame = Static<typeof StreamDataFrameSchema>

export const StreamCloseFrameSchema = Type.Object({
  type: Type.Literal('stream_close'),
  stream_id: StreamIdSchema
}, { additionalProperties: false })
export type StreamCloseFrame = Static<typeof StreamCloseFrameSchema>

/** Any other fields are echoed back in the `pong`. */
export const PingFrameSchema = Type.Object({
  type: Type.Literal('ping')
}, { additionalProperties: true })
export type PingFrame = Static<typeof PingFrameSchema>

export const ClientFrameSchemas = {
  hello: HelloFrameSchema,
  auth_refresh: AuthRefreshFrameSchema,
  stream_open: StreamOpenFrameSchema,
  stream_data: StreamDataFrameSchema,
  stream_close: StreamCloseFrameSchema,
  ping: PingFrameSchema
} as const
export type ClientFrameType = keyof typeof ClientFrameSchemas
export type ClientFrame = HelloFrame | AuthRefreshFrame | StreamOpenFrame | StreamDataFrame | StreamCloseFrame | PingFrame

// Gateway → client.

export const AuthAcceptedFrameSchema = Type.Object({
  type: Type.Literal('auth_result'),
  allowed: Type.Literal(true),
  session_id: Type.String({ format: 'uuid' }),
  user_id: Type.String(),
  subscription_status: Type.Optional(Type.String()),
  /** A new gateway token pair; absent when the session was opened with a gateway access token. */
  access_token: Type.Optional(Type.String()),
  refresh_token: Type.Optional(Type.String()),
  /** Seconds until `access_token` expires. */
  expires_in: Type.Optional(Type.Integer({ minimum: 0 }))
})
export const AuthRefusedFrameSchema = Type.Object({
  type: Type.Literal('auth_result'),
  allowed: Type.Literal(false),
  reason: Type.String()
})
export const AuthResultFrameSchema = Type.Union([AuthAcceptedFrameSchema, AuthRefusedFrameSchema])
export type AuthResultFrame = Static<typeof AuthResultFrameSchema>

/**
 * The session's credential must be renewed by the client: an `auth_refresh` within
 * `grace_ms`, or the session is closed with 1008 `auth_expired`.
 */
export const AuthRefreshRequiredFrameSchema = Type.Object({
  type: Type.Literal('auth_refresh_required'),
  reason: Type.Union([Type.Literal('expired'), Type.Literal('invalidated')]),
  grace_ms: Type.Integer({ minimum: 0 })
})
export type AuthRefreshRequiredFrame = Static<typeof AuthRefreshRequiredFrameSchema>

export const ServerStreamDataFrameSchema = Type.Object({
  type: Type.Literal('stream_data'),
  stream_id: StreamIdSchema,
  data: Base64Schema
})

export const ServerStreamCloseFrameSchema = Type.Object({
  type: Type.Literal('stream_close'),
  stream_id: StreamIdSchema,
  reason: Type.String()
})

export const PongFrameSchema = Type.Object({
  type: Type.Literal('pong')
}, { additionalProperties: true })

export const ErrorFrameSchema = Type.Object({
  type: Type.Literal('error'),
  code: Type.String(),
  message: Type.String(),
  stream_id: Type.Optional(StreamIdSchema)
})
export type ErrorFrame = Static<typeof ErrorFrameSchema>

/** Close reasons (1008) of a session whose authorization ended. */
export const SessionCloseReasons = {
  /** Re-authorization (at token expiry or on `/admin/auth/invalidate`) refused the credential. */
  AUTH_REVOKED: 'auth_revoked',
  /** The client did not renew with `auth_refresh` within `jwt_refresh_grace`. */
  AUTH_EXPIRED: 'auth_expired'
} as const

/** Why the gateway ended a stream (`stream_close.reason`). */
export const StreamCloseReasons = {
  /** The upstream ended its side normally (e.g. the TCP peer closed). */
  UPSTREAM_CLOSED: 'upstream_closed',
  /** The upstream failed; an `error` frame with UPSTREAM_ERROR came first. */
  UPSTREAM_ERROR: 'upstream_error',
  /** Data arrived faster than the upstream could take it before it was ready. */
  BUFFER_FULL: 'buffer_full'
} as const
export type StreamCloseReason = typeof StreamCloseReasons[keyof typeof StreamCloseReasons]
