import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { RawData } from 'ws'
import { WsErrorCode } from '../errors.js'
import {
  ClientFrameSchemas, StreamIdSchema,
  type AuthRefreshRequiredFrame, type ClientFrame, type HelloFrame, type StreamId, type StreamCloseReason
} from '../../schemas/frames.js'
import type { Principal, TokenPair } from '../auth/principal.js'

const checks = new Map<string, TypeCheck<TSchema>>(
  Object.entries(ClientFrameSchemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema as TSchema)])
)
const streamIdCheck = TypeCompiler.Compile(StreamIdSchema)

export type ParseResult =
  | { ok: true, frame: ClientFrame }
  | { ok: false, message: string, streamId?: StreamId }

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

function clip (text: string, max = 120): string {
  return text.length > max ? `${text.slice(0, max)}…` : text
}

/**
 * Turns one WebSocket message into a client frame, or says why it is not one. Never throws:
 * whatever a client sends, the answer is at worst a BAD_FRAME error frame.
 */
export function parseClientFrame (data: RawData, isBinary: boolean): ParseResult {
  if (isBinary) return { ok: false, message: 'frames are JSON text messages, got a binary message' }
  const text = Buffer.isBuffer(data)
    ? data.toString('utf8')
    : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, message: 'frame is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: `frame must be a JSON object, got ${describe(value)}` }
  }
  const obj = value as Record<string, unknown>
  const streamId = streamIdCheck.Check(obj.stream_id) ? obj.stream_id as StreamId : undefined
  const type = obj.type
  if (typeof type !== 'string') return { ok: false, message: 'frame has no string "type"', streamId }
  const check = checks.get(type)
  if (check === undefined) return { ok: false, message: `unknown frame type ${JSON.stringify(clip(type, 40))}`, streamId }
  const first = check.Errors(obj).First()
  if (first !== undefined) {
    const where = first.path === '' ? 'frame' : first.path.slice(1)
    return { ok: false, message: clip(`${type}: ${where}: ${first.message}`), streamId }
  }
  if (type === 'stream_data' && (obj.data as string).length % 4 !== 0) {
    return { ok: false, message: 'stream_data: data: base64 length must be a multiple of 4', streamId }
  }
  if (type === 'hello') {
    const problem = helloProblem(obj as HelloFrame)
    if (problem !== undefined) return { ok: false, message: `hello: ${problem}` }
  }
  return { ok: true, frame: obj as ClientFrame }
}

/** A hello carries exactly one kind of credentials: device_id with token, api_key, or access_token. */
function helloProblem (hello: HelloFrame): string | undefined {
  const device = hello.device_id !== undefined || hello.token !== undefined
  const kinds = [device, hello.api_key !== undefined, hello.access_token !== undefined].filter(Boolean).length
  if (kinds === 0) return 'credentials: expected device_id and token, api_key, or access_token'
  if (kinds > 1) return 'credentials: expected exactly one of device_id and token, api_key, or access_token'
  if (!device) return undefined
  if (hello.token === undefined) return 'token: required with device_id'
  if (hello.device_id === undefined) return 'device_id: required with token'
  return undefined
}

// Gateway → client frames, serialized once here so the shapes match schemas/frames.ts.

export function authAccepted (sessionId: string, principal: Principal, tokens?: TokenPair): string {
  return JSON.stringify({
    type: 'auth_result',
    allowed: true,
    session_id: sessionId,
    user_id: principal.user_id,
    subscription_status: principal.subscription_status,
    access_token: tokens?.access_token,
    refresh_token: tokens?.refresh_token,
    expires_in: tokens?.expires_in
  })
}

export function authRefreshRequired (reason: AuthRefreshRequiredFrame['reason'], graceMs: number): string {
  return JSON.stringify({ type: 'auth_refresh_required', reason, grace_ms: graceMs })
}

export function authRefused (reason: string): string {
  return JSON.stringify({ type: 'auth_result', allowed: false, reason })
}

export function streamDataFrame (streamId: StreamId, bytes: Buffer): string {
  return JSON.stringify({ type: 'stream_data', stream_id: streamId, data: bytes.toString('base64') })
}

export function streamCloseFrame (streamId: StreamId, reason: StreamCloseReason): string {
  return JSON.stringify({ type: 'stream_close', stream_id: streamId, reason })
}

export function errorFrame (code: WsErrorCode, message: string, streamId?: StreamId): string {
  return JSON.stringify({ type: 'error', code, message, stream_id: streamId })
}

/** The pong carries the ping's other fields back; a payload that cannot be serialized is a bad frame. */
export function pongFrame (ping: Record<string, unknown>): string | undefined {
  try {
    return JSON.stringify({ ...ping, type: 'pong' })
  } catch {
    return undefined
  }
}
