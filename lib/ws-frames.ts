import { createHash, randomFillSync } from 'node:crypto'

/** RFC 6455 opcodes. */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa
} as const

/** Largest payload a control frame may carry (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2). */
export function acceptKey (key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64')
}

/** A `Sec-WebSocket-Key` is the base64 of 16 bytes: 22 characters and `==`. */
export function isValidKey (key: unknown): key is string {
  return typeof key === 'string' && /^[A-Za-z0-9+/]{22}==$/.test(key)
}

/** One parsed frame header: where it ends and what follows it. */
export interface FrameHeader {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  /** Header bytes, mask key included. */
  headerLength: number
  payloadLength: number
}

/**
 * Parses the frame header at `offset`, or returns `null` when `buf` does not hold all of it yet.
 * A 64-bit length beyond 2^53 is returned as `Infinity` (the caller refuses it as too big).
 */
export function parseHeader (buf: Buffer, offset: number): FrameHeader | null {
  const available = buf.length - offset
  if (available < 2) return null
  const b0 = buf[offset]
  const b1 = buf[offset + 1]
  const masked = (b1 & 0x80) !== 0
  let payloadLength = b1 & 0x7f
  let headerLength = 2
  if (payloadLength === 126) {
    if (available < 4) return null
    payloadLength = buf.readUInt16BE(offset + 2)
    headerLength = 4
  } else if (payloadLength === 127) {
    if (available < 10) return null
    const high = buf.readUInt32BE(offset + 2)
    payloadLength = high > 0x1fffff ? Infinity : high * 2 ** 32 + buf.readUInt32BE(offset + 6)
    headerLength = 10
  }
  if (masked) headerLength += 4
  if (available < headerLength) return null
  return { fin: (b0 & 0x80) !== 0, rsv: b0 & 0x70, opcode: b0 & 0x0f, masked, headerLength, payloadLength }
}

/** The unmasked payload of a whole control frame (`frame` starts at its header). */
export function controlPayload (frame: Buffer, header: FrameHeader): Buffer {
  const payload = Buffer.from(frame.subarray(header.headerLength, header.headerLength + header.payloadLength))
  if (header.masked) {
    const key = header.headerLength - 4
    for (let i = 0; i < payload.length; i++) payload[i] ^= frame[key + (i & 3)]
  }
  return payload
}

/**
 * A control frame (close, ping, pong) with a payload of at most 125 bytes. Frames the gateway
 * sends as a client (to an upstream) must be masked with a fresh random key (RFC 6455 §5.3).
 */
export function controlFrame (opcode: number, payload: Buffer, mask: boolean): Buffer {
  const body = payload.length > MAX_CONTROL_PAYLOAD ? payload.subarray(0, MAX_CONTROL_PAYLOAD) : payload
  const frame = Buffer.alloc(2 + (mask ? 4 : 0) + body.length)
  frame[0] = 0x80 | opcode
  frame[1] = (mask ? 0x80 : 0) | body.length
  if (!mask) {
    body.copy(frame, 2)
    return frame
  }
  randomFillSync(frame, 2, 4)
  for (let i = 0; i < body.length; i++) frame[6 + i] = body[i] ^ frame[2 + (i & 3)]
  return frame
}

/**
 * The start of one final, unmasked frame (a server's) whose payload is `lead` and then
 * `length - lead.length` more bytes: the frame header (RFC 6455 §5.2) and `lead`, in one buffer.
 * Written before the rest of the payload, it frames bytes the caller does not have to copy.
 */
export function unmaskedFrameStart (opcode: number, lead: Buffer, length: number): Buffer {
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10
  // Small: Buffer's shared pool serves it without an allocation of its own.
  const start = Buffer.allocUnsafe(headerLength + lead.length)
  start[0] = 0x80 | opcode
  if (headerLength === 2) {
    start[1] = length
  } else if (headerLength === 4) {
    start[1] = 126
    start.writeUInt16BE(length, 2)
  } else {
    start[1] = 127
    start.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    start.writeUInt32BE(length >>> 0, 6)
  }
  lead.copy(start, headerLength)
  return start
}

/** A close frame with `code` and a reason cut to fit the 125-byte control payload. */
export function closeFrame (code: number, reason: string, mask: boolean): Buffer {
  const text = Buffer.from(reason)
  let length = Math.min(text.length, MAX_CONTROL_PAYLOAD - 2)
  // Cut at a character boundary: a reason that is not valid UTF-8 fails the close (1007).
  if (length < text.length) while (length > 0 && (text[length] & 0xc0) === 0x80) length--
  const payload = Buffer.alloc(2 + length)
  payload.writeUInt16BE(code, 0)
  text.copy(payload, 2, 0, length)
  return controlFrame(Opcode.CLOSE, payload, mask)
}

/** The close code in a close frame's payload, or `undefined` when it carries none. */
export function closeCode (payload: Buffer): number | undefined {
  return payload.length >= 2 ? payload.readUInt16BE(0) : undefined
}

/** Close codes an endpoint may send (RFC 6455 §7.4): not 1004-1006, 1015, or unassigned ones. */
export function isSendableCloseCode (code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}
