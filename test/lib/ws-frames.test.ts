import { test } from 'tap'
import { acceptKey, closeCode, closeFrame, controlFrame, controlPayload, isValidKey, Opcode, parseHeader, unmaskedFrameStart } from '../../lib/ws-frames.js'

test('frame headers: 7-, 16- and 64-bit lengths, masks, and incomplete headers', async (t) => {
  t.match(parseHeader(Buffer.from([0x81, 0x05]), 0), { fin: true, opcode: 1, masked: false, headerLength: 2, payloadLength: 5 })
  t.match(parseHeader(Buffer.from([0x02, 0xfe, 0x01, 0x00, 1, 2, 3, 4]), 0), { fin: false, opcode: 2, masked: true, headerLength: 8, payloadLength: 256 })
  const big = Buffer.alloc(10)
  big[0] = 0x82
  big[1] = 127
  big.writeUInt32BE(1, 2)
  t.match(parseHeader(big, 0), { headerLength: 10, payloadLength: 2 ** 32 })
  big.writeUInt32BE(0xffffffff, 2)
  t.equal(parseHeader(big, 0)?.payloadLength, Infinity, 'beyond 2^53 is refused as too big by the caller')
  t.equal(parseHeader(Buffer.from([0x81]), 0), null)
  t.equal(parseHeader(Buffer.from([0x81, 0x7e, 0x01]), 0), null)
  t.equal(parseHeader(Buffer.from([0x81, 0x85, 1, 2, 3]), 0), null, 'the mask key is part of the header')
  t.match(parseHeader(Buffer.from([0, 0, 0x8a, 0x00]), 2), { opcode: Opcode.PONG, payloadLength: 0 }, 'at an offset')
})

test('control frames: masked for upstreams, plain for clients, reasons cut to 125 bytes', async (t) => {
  const payload = Buffer.from('ping!')
  const plain = controlFrame(Opcode.PING, payload, false)
  t.same([...plain], [0x89, 5, ...payload])
  const masked = controlFrame(Opcode.PING, payload, true)
  const header = parseHeader(masked, 0)
  t.ok(header?.masked)
  t.same(controlPayload(masked, header as NonNullable<typeof header>), payload)
  const close = closeFrame(4001, 'x'.repeat(300), false)
  const closeHeader = parseHeader(close, 0) as NonNullable<ReturnType<typeof parseHeader>>
  t.equal(closeHeader.payloadLength, 125)
  t.equal(closeCode(controlPayload(close, closeHeader)), 4001)
  t.equal(closeCode(Buffer.alloc(0)), undefined)
})

test('handshake keys', async (t) => {
  // RFC 6455 §1.3's example.
  t.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  t.ok(isValidKey('dGhlIHNhbXBsZSBub25jZQ=='))
  for (const bad of [undefined, '', 'short', 'dGhlIHNhbXBsZSBub25jZQ', 'dGhlIHNhbXBsZSBub25jZQ==x']) t.notOk(isValidKey(bad), String(bad))
})

test('a long close reason is cut at a character boundary', async (t) => {
  const close = closeFrame(1008, 'é'.repeat(100), false)
  const header = parseHeader(close, 0) as NonNullable<ReturnType<typeof parseHeader>>
  const reason = controlPayload(close, header).subarray(2)
  t.equal(reason.length, 122, 'an even number of bytes: no half character')
  t.equal(reason.toString(), 'é'.repeat(61))
})

test('the start of an unmasked frame: the shortest length form at each boundary, then the lead bytes', async (t) => {
  const lead = Buffer.from([1, 2, 3])
  for (const [length, headerLength] of [[3, 2], [125, 2], [126, 4], [0xffff, 4], [0x10000, 10], [2 ** 32 + 5, 10], [Number.MAX_SAFE_INTEGER, 10]]) {
    const start = unmaskedFrameStart(Opcode.BINARY, lead, length)
    t.equal(start.length, headerLength + lead.length, `${length}: ${headerLength}-byte header`)
    t.match(parseHeader(start, 0), { fin: true, rsv: 0, opcode: Opcode.BINARY, masked: false, headerLength, payloadLength: length }, `${length} reads back`)
    t.same(start.subarray(headerLength), lead, `${length}: the lead follows the header`)
  }
  t.same([...unmaskedFrameStart(Opcode.TEXT, Buffer.alloc(0), 126)], [0x81, 126, 0, 126], 'the 16-bit length is big-endian')
  t.same([...unmaskedFrameStart(Opcode.BINARY, Buffer.alloc(0), 2 ** 32 + 5)], [0x82, 127, 0, 0, 0, 1, 0, 0, 0, 5], 'so is the 64-bit one')
})
