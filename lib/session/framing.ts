import { isAscii, isUtf8 } from 'node:buffer'
import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { RawData } from 'ws'
import { WsErrorCode } from '../errors.js'
import {
  Base64Schema, ClientFrameSchemas, StreamDataFrameSchema, StreamIdSchema,
  type AuthRefreshRequiredFrame, type ClientFrame, type HelloFrame, type StreamId, type StreamCloseReason
} from '../../schemas/frames.js'
import type { Principal, TokenPair } from '../auth/principal.js'

/**
 * Compiled checks: `Check` is the fast yes/no; the (interpreted, allocating) `Errors` walker
 * runs only on a frame that failed, to say why.
 */
const checks = new Map<string, TypeCheck<TSchema>>(
  Object.entries(ClientFrameSchemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema as TSchema)])
)
/**
 * `stream_data` without the base64 pattern: a regular expression over every payload costs more
 * than the rest of the frame's handling, so `base64Payload` checks `data` while decoding it.
 */
const streamDataShape = TypeCompiler.Compile(Type.Object({
  ...StreamDataFrameSchema.properties,
  data: Type.String()
}, { additionalProperties: false }))
const streamIdCheck = TypeCompiler.Compile(StreamIdSchema)
/** The schema's own pattern, for the rare payload the fast check cannot vouch for. */
const BASE64 = new RegExp(Base64Schema.pattern as string)
const BACKSLASH = 0x5c
const EQUALS = 0x3d
const QUOTE = 0x22
/** How the gateway's own clients (and `JSON.stringify` of the documented shape) write a `stream_data` frame. */
const STREAM_DATA_HEAD = Buffer.from('{"type":"stream_data","stream_id":')
const STREAM_DATA_KEY = Buffer.from(',"data":"')

export type ParseResult =
  | { ok: true, frame: ClientFrame, bytes?: undefined }
  /** A `stream_data` frame comes with its payload decoded. */
  | { ok: true, frame: ClientFrame, bytes: Buffer }
  | { ok: false, message: string, streamId?: StreamId }

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

function clip (text: string, max = 120): string {
  return text.length > max ? `${text.slice(0, max)}…` : text
}

/** Why `obj` does not match its type's schema (the first error), or undefined if it does. */
function schemaError (type: string, check: TypeCheck<TSchema>, obj: Record<string, unknown>): string | undefined {
  const first = check.Errors(obj).First()
  if (first === undefined) return undefined
  const where = first.path === '' ? 'frame' : first.path.slice(1)
  return clip(`${type}: ${where}: ${first.message}`)
}

/**
 * The bytes of `data` when it is standard base64 with padding (`Base64Schema`, length a
 * multiple of 4); undefined when it is not. `plain`: no character of `data` is above 0xff
 * (it came from a message without non-ASCII bytes or escapes, or one character per byte).
 *
 * Without a regular expression: Node's decoder turns every base64 symbol into 6 bits and skips
 * or stops at anything else, so the decoded length is 3/4 of the length less the padding only
 * when every character before the padding is a symbol. Its symbols are the standard ones plus
 * base64url's `-` and `_`, looked for apart; and a character above 0xff may decode as its low
 * byte, hence `plain`. Anything the fast check cannot vouch for goes through the pattern.
 */
function base64Payload (data: string, plain: boolean): Buffer | undefined {
  const length = data.length
  if (length % 4 !== 0) return undefined
  let padding = 0
  if (length > 0 && data.charCodeAt(length - 1) === EQUALS) padding = data.charCodeAt(length - 2) === EQUALS ? 2 : 1
  const bytes = Buffer.from(data, 'base64')
  // (More than two `=` leave at most length - 3 symbols: too few bytes, whatever `padding` says.)
  if (plain && bytes.length === (length / 4) * 3 - padding && data.indexOf('-') === -1 && data.indexOf('_') === -1) {
    return bytes
  }
  return BASE64.test(data) ? bytes : undefined
}

/**
 * A valid `stream_data` frame written exactly as `{"type":"stream_data","stream_id":<id>,"data":"<base64>"}`
 * (no spaces, these keys in this order, an integer id or a plain ASCII string id, no escapes),
 * read straight from the bytes; undefined for anything else, which `parseClientFrame` reads
 * the general way. So the result is what JSON.parse and the schema would have made of it,
 * without decoding the payload's UTF-8 and parsing it as JSON first.
 */
function plainStreamData (raw: Buffer): ParseResult | undefined {
  const end = raw.length - 2
  if (raw.length < STREAM_DATA_HEAD.length + STREAM_DATA_KEY.length + 3 || raw[end] !== QUOTE || raw[end + 1] !== 0x7d) return undefined
  if (raw.compare(STREAM_DATA_HEAD, 0, STREAM_DATA_HEAD.length, 0, STREAM_DATA_HEAD.length) !== 0) return undefined
  let i = STREAM_DATA_HEAD.length
  let streamId: StreamId
  if (raw[i] === QUOTE) {
    const close = raw.indexOf(QUOTE, i + 1)
    if (close < 0 || close === i + 1 || close - i - 1 > 64) return undefined
    for (let k = i + 1; k < close; k++) {
      if (raw[k] < 0x20 || raw[k] > 0x7e || raw[k] === BACKSLASH) return undefined
    }
    streamId = raw.toString('latin1', i + 1, close)
    i = close + 1
  } else {
    const first = i
    let id = 0
    while (i - first < 17 && raw[i] >= 0x30 && raw[i] <= 0x39) id = id * 10 + raw[i++] - 0x30
    // JSON has no leading zeros; a larger id is not a safe integer (rounding never takes it below 2^53).
    if (i === first || i - first > 16 || (raw[first] === 0x30 && i - first > 1) || id > Number.MAX_SAFE_INTEGER) return undefined
    streamId = id
  }
  // (Buffer#compare throws on a range past the end: a frame that ends right after its id.)
  if (i + STREAM_DATA_KEY.length > end || raw.compare(STREAM_DATA_KEY, 0, STREAM_DATA_KEY.length, i, i + STREAM_DATA_KEY.length) !== 0) return undefined
  const start = i + STREAM_DATA_KEY.length
  // One character per byte, so a non-ASCII byte is a character of 0x80-0xff, never a base64
  // symbol. Valid base64 has no quote, backslash or control character either: then the payload
  // is a JSON string read as is, and the frame ends right after it.
  const data = raw.toString('latin1', start, end)
  const bytes = base64Payload(data, true)
  if (bytes === undefined) return undefined
  return { ok: true, frame: { type: 'stream_data', stream_id: streamId, data }, bytes }
}

// Binary `stream_data` (docs/protocol.md, "Binary stream_data"): one header, then the payload as is.

/** The first byte of a binary message: what it is. Only `stream_data` exists; others are refused, kept for later. */
export const BINARY_STREAM_DATA = 0x01
/** The second byte: how the stream id follows. */
export const BINARY_ID_INTEGER = 0x00
export const BINARY_ID_STRING = 0x01
const TWO_32 = 2 ** 32
/** The high 32 bits of an 8-byte id at most 2^53 - 1. */
const MAX_ID_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / TWO_32)

function badBinary (message: string, streamId?: StreamId): ParseResult {
  return { ok: false, message: `binary stream_data: ${message}`, streamId }
}

/**
 * A binary message: `[0x01][0x00][id: 8 bytes, big-endian]payload` for an integer id,
 * `[0x01][0x01][n][id: n bytes of UTF-8]payload` for a string id. The payload is a view into
 * the message, never copied or decoded.
 */
function parseBinaryFrame (raw: Buffer): ParseResult {
  if (raw.length < 2) return badBinary('a binary message needs at least 2 header bytes (type, id kind)')
  if (raw[0] !== BINARY_STREAM_DATA) {
    const hint = raw[0] === 0x7b ? '; JSON frames go in text messages' : ''
    return badBinary(`unknown binary frame type 0x${raw[0].toString(16).padStart(2, '0')} (0x01 is stream_data)${hint}`)
  }
  let streamId: StreamId
  let start: number
  if (raw[1] === BINARY_ID_INTEGER) {
    if (raw.length < 10) return badBinary('an integer stream id takes 8 bytes after the 2 header bytes')
    const high = raw.readUInt32BE(2)
    if (high > MAX_ID_HIGH) return badBinary('stream_id must be at most 2^53 - 1')
    streamId = high * TWO_32 + raw.readUInt32BE(6)
    start = 10
  } else if (raw[1] === BINARY_ID_STRING) {
    const n = raw.length > 2 ? raw[2] : 0
    if (n === 0 || raw.length < 3 + n) return badBinary('a string stream id takes a length byte (1-255) and that many bytes')
    if (!isUtf8(raw.subarray(3, 3 + n))) return badBinary('a string stream id must be UTF-8')
    streamId = raw.toString('utf8', 3, 3 + n)
    if (!streamIdCheck.Check(streamId)) return badBinary('stream_id must be a string of 1-64 characters (UTF-16 code units)')
    start = 3 + n
  } else {
    return badBinary(`unknown stream id kind 0x${raw[1].toString(16).padStart(2, '0')} (0x00 integer, 0x01 string)`)
  }
  // `data` stays empty: the payload is `bytes`, which is all a stream_data frame is used for past here.
  return { ok: true, frame: { type: 'stream_data', stream_id: streamId, data: '' }, bytes: raw.subarray(start) }
}

function messageBytes (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

/**
 * Turns one WebSocket message into a client frame, or says why it is not one. Never throws:
 * whatever a client sends, the answer is at worst a BAD_FRAME error frame.
 */
export function parseClientFrame (data: RawData, isBinary: boolean): ParseResult {
  const raw = messageBytes(data)
  if (isBinary) return parseBinaryFrame(raw)
  const plain = plainStreamData(raw)
  if (plain !== undefined) return plain
  let value: unknown
  try {
    value = JSON.parse(raw.toString('utf8'))
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
  if (type === 'stream_data') {
    if (!streamDataShape.Check(obj)) {
      const message = schemaError(type, check, obj)
      if (message !== undefined) return { ok: false, message, streamId }
    }
    const text = obj.data as string
    const bytes = base64Payload(text, isAscii(raw) && raw.indexOf(BACKSLASH) === -1)
    if (bytes !== undefined) return { ok: true, frame: obj as ClientFrame, bytes }
    // The pattern's error first, as the schema gives it; then the length.
    const message = schemaError(type, check, obj)
    if (message !== undefined) return { ok: false, message, streamId }
    return { ok: false, message: 'stream_data: data: base64 length must be a multiple of 4', streamId }
  }
  if (!check.Check(obj)) {
    const message = schemaError(type, check, obj)
    if (message !== undefined) return { ok: false, message, streamId }
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

/** A fresh access token alone (a re-check renews within the login: the client keeps its refresh token), or a new pair. */
export type IssuedTokens = Omit<TokenPair, 'refresh_token'> & { refresh_token?: string }

export function authAccepted (sessionId: string, principal: Principal, tokens?: IssuedTokens): string {
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

/** What every `stream_data` frame of one stream starts with, up to the payload's opening quote. */
export function streamDataHead (streamId: StreamId): Buffer {
  // The id is a valid string or integer: only it needs JSON escaping.
  return Buffer.from(`{"type":"stream_data","stream_id":${JSON.stringify(streamId)},"data":"`)
}

/**
 * A `stream_data` frame, as the UTF-8 bytes of `{"type":"stream_data","stream_id":…,"data":"…"}`
 * (sent as a text message): base64 needs no escaping, so the payload is written as is instead of
 * going through `JSON.stringify` and another UTF-8 encoding.
 */
export function streamDataFrame (head: Buffer, bytes: Buffer): Buffer {
  const data = bytes.toString('base64')
  const frame = Buffer.allocUnsafe(head.length + data.length + 2)
  head.copy(frame, 0)
  frame.write(data, head.length, 'latin1')
  frame[frame.length - 2] = 0x22 // "
  frame[frame.length - 1] = 0x7d // }
  return frame
}

/** What every binary `stream_data` message of one stream starts with: type, id kind and id. */
export function binaryStreamDataHead (streamId: StreamId): Buffer {
  if (typeof streamId === 'number') {
    const head = Buffer.allocUnsafe(10)
    head[0] = BINARY_STREAM_DATA
    head[1] = BINARY_ID_INTEGER
    head.writeUInt32BE(Math.floor(streamId / TWO_32), 2)
    head.writeUInt32BE(streamId % TWO_32, 6)
    return head
  }
  const id = Buffer.from(streamId)
  // 64 characters of at most 3 bytes each (a 4-byte character counts as two): the length fits a byte.
  return Buffer.concat([Buffer.from([BINARY_STREAM_DATA, BINARY_ID_STRING, id.length]), id])
}

/** A binary `stream_data` message: the head, then the payload as is. */
export function binaryStreamDataFrame (head: Buffer, bytes: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(head.length + bytes.length)
  head.copy(frame, 0)
  bytes.copy(frame, head.length)
  return frame
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
