import { createHash, randomBytes } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { test } from 'tap'
import { DeviceListAuthenticator } from '../../lib/auth/device-list.js'
import { isCheckFailure } from '../../lib/auth/types.js'
import { binaryStreamDataFrame, binaryStreamDataHead, parseClientFrame } from '../../lib/session/framing.js'
import { canTransition, CONNECTION_STATES } from '../../lib/registry.js'
import { SESSION_PHASES, SESSION_TRANSITIONS } from '../../lib/session/session.js'
import { parseTarget } from '../../lib/upstreams/index.js'
import { ClientFrameSchemas, StreamIdSchema } from '../../schemas/frames.js'
import { binaryFrame, readBinaryFrame } from './helpers.js'

type Test = { fail: (message: string) => unknown }

function parse (value: unknown): ReturnType<typeof parseClientFrame> {
  return parseClientFrame(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), false)
}

test('stream ids: a 1-64 character string or a non-negative safe integer', async (t) => {
  for (const id of ['a', 'x'.repeat(64), 0, 1, Number.MAX_SAFE_INTEGER, 'ü-ñ']) {
    t.ok(parse({ type: 'stream_close', stream_id: id }).ok, JSON.stringify(id))
  }
  for (const id of ['', 'x'.repeat(65), -1, 1.5, 2 ** 53, 1e308, null, true, [], {}]) {
    t.notOk(parse({ type: 'stream_close', stream_id: id }).ok, JSON.stringify(id))
  }
  t.notOk(parse('{"type":"stream_close","stream_id":1e400}').ok, 'Infinity')
})

test('stream_data: standard base64 with padding only', async (t) => {
  for (const data of ['', 'QQ==', 'QUI=', 'QUJD', 'aGVsbG8gd29ybGQ=', '+/+/']) {
    t.ok(parse({ type: 'stream_data', stream_id: 1, data }).ok, data)
  }
  for (const data of ['Q', 'QQ', 'QQ=', 'Q===', '====', 'QQ==QQ==', 'aGVs bG8=', '-_-_', 'QUJD\n', 12, null]) {
    const r = parse({ type: 'stream_data', stream_id: 1, data })
    t.notOk(r.ok, JSON.stringify(data))
    if (!r.ok) t.equal(r.streamId, 1, 'the error names the stream')
  }
})

test('a stream_data that ends right after a long id is a bad frame, not a failure of the fast path', async (t) => {
  // Long enough for the fast path's length check, with no room for `,"data":"` after the id.
  t.match(parse('{"type":"stream_data","stream_id":"aaaaaaaaaaaaaaaa"}'), { ok: false, message: 'stream_data: data: Expected required property', streamId: 'aaaaaaaaaaaaaaaa' })
  t.match(parse('{"type":"stream_data","stream_id":1234567890123,"x":"}'), { ok: false, message: /not valid JSON/ })
  t.match(parse('{"type":"stream_data","stream_id":"aaaaaaaaaa","data":"QQ=="}'), { ok: true, bytes: Buffer.from('A') })
})

test('bad frames say why', async (t) => {
  t.match(parse('nope'), { ok: false, message: /not valid JSON/ })
  t.match(parse('[1]'), { ok: false, message: /JSON object, got an array/ })
  t.match(parse('null'), { ok: false, message: /got null/ })
  t.match(parse({ stream_id: 1 }), { ok: false, message: /no string "type"/ })
  t.match(parse({ type: 'teleport' }), { ok: false, message: /unknown frame type "teleport"/ })
  t.match(parse({ type: 'stream_open', stream_id: 1, upstrem: 'echo' }), { ok: false, message: /upstrem/ })
  t.match(parse({ type: 'hello', device_id: 'd' }), { ok: false, message: /token/ })
  t.match(parseClientFrame(Buffer.from('{"type":"ping"}'), true), { ok: false, message: /unknown binary frame type 0x7b/ })
  t.match(parse({ type: 'ping', anything: [1, { x: 2 }] }), { ok: true })
  t.match(parse({ type: 'x'.repeat(10_000) }), { ok: false, message: /^.{0,120}$/ })
})

test('binary stream_data: the gateway writes the layout of docs/protocol.md and reads its own messages back', async (t) => {
  const payload = Buffer.from([0, 1, 2, 0xfe, 0xff])
  // 64 UTF-16 units of 3-byte characters and of 4-byte ones (two units each): the most bytes an id can take.
  for (const id of [0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER, 'a', '7', 'x'.repeat(64), '€'.repeat(64), '😀'.repeat(32)]) {
    const message = binaryStreamDataFrame(binaryStreamDataHead(id), payload)
    t.same(message, binaryFrame(id, payload), `${JSON.stringify(id).slice(0, 12)}: as the test client writes it`)
    t.same(readBinaryFrame(message), { streamId: id, payload })
    const parsed = parseClientFrame(message, true)
    t.ok(parsed.ok)
    if (parsed.ok) {
      t.equal(parsed.frame.type, 'stream_data')
      t.equal((parsed.frame as { stream_id: unknown }).stream_id, id)
      t.same(parsed.bytes, payload)
    }
  }
  t.equal(binaryStreamDataHead('€'.repeat(64))[2], 192, 'the longest id in bytes fits the length byte')
  // Fragments and ArrayBuffers, as ws may hand them over, read the same.
  const message = binaryFrame('frag', payload)
  t.match(parseClientFrame([message.subarray(0, 4), message.subarray(4)], true), { ok: true, bytes: payload })
  t.match(parseClientFrame(new Uint8Array(message).buffer, true), { ok: true, bytes: payload })
  t.match(parseClientFrame(binaryFrame(5, ''), true), { ok: true, bytes: Buffer.alloc(0) })
})

/** A seeded generator (an LCG), so that a failing case can be replayed. */
function seeded (seed: number): { rnd: () => number, int: (n: number) => number } {
  let state = seed
  const rnd = (): number => {
    state = (state * 1103515245 + 12345) >>> 0
    return state / 2 ** 32
  }
  return { rnd, int: (n: number): number => Math.floor(rnd() * n) }
}

test('binary stream_data: mutated headers are read as the layout says or refused, never thrown on', async (t) => {
  const { rnd, int } = seeded(20261124)
  const ids: Array<number | string> = [0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER, 'a', 'é', '😀'.repeat(32), 'x'.repeat(64)]
  let mismatches = 0
  for (let n = 0; n < 5000; n++) {
    const message = binaryFrame(ids[int(ids.length)], randomBytes(int(20)))
    for (let k = int(3); k > 0; k--) message[int(Math.min(message.length, 12))] = int(256)
    const cut = rnd() < 0.2 ? message.subarray(0, int(message.length + 1)) : message
    const got = parseClientFrame(cut, true)
    const want = readBinaryFrame(cut)
    // Valid as the layout and the JSON id rules say (readBinaryFrame reads without checking the id).
    const valid = want !== undefined && (typeof want.streamId === 'number'
      ? Number.isSafeInteger(want.streamId)
      : want.streamId.length >= 1 && want.streamId.length <= 64 && Buffer.from(want.streamId).equals(cut.subarray(3, 3 + cut[2])))
    const same = got.ok
      ? valid && (got.frame as { stream_id: unknown }).stream_id === want?.streamId && got.bytes?.equals(want.payload) === true
      : !valid && /^binary stream_data: /.test(got.message)
    if (!same && ++mismatches <= 3) t.fail(`${cut.toString('hex')}: ${JSON.stringify(got)}`)
  }
  t.equal(mismatches, 0, '5000 mutated messages')
})

test('tcp targets: host:port and [v6]:port, lower-cased', async (t) => {
  t.same(parseTarget('Example.COM:443'), { key: 'example.com:443', host: 'example.com', port: 443 })
  t.same(parseTarget('[::1]:8080'), { key: '[::1]:8080', host: '::1', port: 8080 })
  t.same(parseTarget('127.0.0.1:22'), { key: '127.0.0.1:22', host: '127.0.0.1', port: 22 })
  for (const bad of ['host', 'host:', ':80', 'host:0', 'host:65536', 'host:80:80', 'a b:80', 'a/b:80', '::1:80', 'host:80 ']) {
    t.equal(parseTarget(bad), undefined, bad)
  }
})

test('embedded device list: plain and sha256 tokens, one reason for every refusal', async (t) => {
  const auth = new DeviceListAuthenticator([
    { device_id: 'p', token: 'plain', user_id: 'u1', subscription_status: 'trial' },
    { device_id: 'h', token_sha256: createHash('sha256').update('hashed').digest('hex'), user_id: 'u2' }
  ])
  t.same(await auth.validate('p', 'plain'), { allowed: true, user_id: 'u1', subscription_status: 'trial' })
  t.same(await auth.validate('h', 'hashed'), { allowed: true, user_id: 'u2' })
  t.same(await auth.validate('p', 'hashed'), { allowed: false, reason: 'invalid_credentials' })
  t.same(await auth.validate('nobody', 'plain'), { allowed: false, reason: 'invalid_credentials' })
  t.same(await auth.validate('p', ''), { allowed: false, reason: 'invalid_credentials' })
  t.notOk(isCheckFailure({ allowed: false, reason: 'invalid_credentials' }))
  t.ok(isCheckFailure({ allowed: false, reason: 'backend_timeout' }))
})

test('session states: every state can close, closed is final', async (t) => {
  for (const [state, next] of Object.entries(SESSION_TRANSITIONS)) {
    if (state === 'closed') t.same(next, [])
    else t.ok(next.includes('closed'), `${state} → closed`)
  }
  t.same(SESSION_TRANSITIONS.running, ['paused', 'closed'])
  t.same(SESSION_TRANSITIONS.paused, ['running', 'closed'])
})

test('hello: exactly one kind of credentials; auth_refresh needs its token', async (t) => {
  for (const hello of [{ device_id: 'd', token: 't' }, { api_key: 'k' }, { access_token: 'a.b.c' }]) {
    t.ok(parse({ type: 'hello', ...hello }).ok, JSON.stringify(hello))
  }
  t.match(parse({ type: 'hello' }), { ok: false, message: /device_id and token, api_key, or access_token/ })
  t.match(parse({ type: 'hello', token: 't' }), { ok: false, message: /device_id: required/ })
  t.match(parse({ type: 'hello', api_key: 'k', access_token: 'a' }), { ok: false, message: /exactly one/ })
  t.match(parse({ type: 'hello', device_id: 'd', token: 't', access_token: 'a' }), { ok: false, message: /exactly one/ })
  t.match(parse({ type: 'hello', api_key: '' }), { ok: false, message: /api_key/ })
  t.ok(parse({ type: 'auth_refresh', refresh_token: 'r' }).ok)
  t.match(parse({ type: 'auth_refresh' }), { ok: false, message: /refresh_token/ })
  t.match(parse({ type: 'auth_refresh', refresh_token: 'r', extra: 1 }), { ok: false, message: /extra/ })
})

test('session phases are the registry states seen from the client: every phase move is a registry move', async (t) => {
  for (const [phase, next] of Object.entries(SESSION_TRANSITIONS)) {
    for (const to of next) {
      const moves = CONNECTION_STATES.some(a => SESSION_PHASES[a] === phase && CONNECTION_STATES.some(b => SESSION_PHASES[b] === to && canTransition(a, b)))
      t.ok(moves, `${phase} → ${to}`)
    }
  }
  t.equal(SESSION_PHASES.refreshing, 'running')
})

/**
 * The parser before the fast paths (every frame through JSON.parse and the schema's error
 * walker, base64 by the schema's pattern): the answers must not have changed, only their cost.
 */
const referenceChecks = new Map<string, TypeCheck<TSchema>>(
  Object.entries(ClientFrameSchemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema as TSchema)])
)
const referenceStreamId = TypeCompiler.Compile(StreamIdSchema)
function reference (raw: Buffer): { ok: boolean, message?: string, streamId?: unknown, frame?: unknown } {
  let value: unknown
  try {
    value = JSON.parse(raw.toString('utf8'))
  } catch {
    return { ok: false, message: 'frame is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false }
  const obj = value as Record<string, unknown>
  const streamId = referenceStreamId.Check(obj.stream_id) ? obj.stream_id : undefined
  const type = obj.type
  if (typeof type !== 'string') return { ok: false, streamId }
  const check = referenceChecks.get(type)
  if (check === undefined) return { ok: false, streamId }
  const first = check.Errors(obj).First()
  if (first !== undefined) {
    const where = first.path === '' ? 'frame' : first.path.slice(1)
    const text = `${type}: ${where}: ${first.message}`
    return { ok: false, message: text.length > 120 ? `${text.slice(0, 120)}…` : text, streamId }
  }
  if (type === 'stream_data' && (obj.data as string).length % 4 !== 0) {
    return { ok: false, message: 'stream_data: data: base64 length must be a multiple of 4', streamId }
  }
  return { ok: true, frame: obj }
}

function sameAsReference (t: Test, raw: Buffer): boolean {
  const got = parseClientFrame(raw, false)
  const want = reference(raw)
  if (got.ok !== want.ok) {
    t.fail(`${raw.toString().slice(0, 80)}: ok ${String(got.ok)}, expected ${String(want.ok)}`)
    return false
  }
  if (got.ok) {
    if (!isDeepStrictEqual(got.frame, want.frame)) {
      t.fail(`${raw.toString().slice(0, 80)}: frame ${JSON.stringify(got.frame).slice(0, 80)}`)
      return false
    }
    const frame = got.frame as { type: string, data?: string }
    if (frame.type === 'stream_data' && !Buffer.from(frame.data as string, 'base64').equals(got.bytes as Buffer)) {
      t.fail(`${raw.toString().slice(0, 80)}: payload differs`)
      return false
    }
    return true
  }
  if (!isDeepStrictEqual(got.streamId, want.streamId) || (want.message !== undefined && got.message !== want.message)) {
    t.fail(`${raw.toString().slice(0, 80)}: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`)
    return false
  }
  return true
}

test('stream_data: the fast paths answer as JSON.parse and the schema do, for near misses too', async (t) => {
  const { rnd, int } = seeded(20261122)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]
  const base = ['', 'QQ==', 'QUI=', 'QUJD', '+/+/', randomBytes(300).toString('base64'), randomBytes(301).toString('base64'), randomBytes(302).toString('base64')]
  const intruders = ['-', '_', '=', '==', '===', ' ', '\n', '\\/', '\\u0041', '\\u0141', '\\u012d', '\\"', '"', 'é', 'Ł', '\u0141', '\u012d', '\u0000', '\t', '!', '.', '\u00ff', '\uD83D\uDE00']
  const ids = ['0', '1', '42', '007', '-1', '1.0', '1e2', '9007199254740991', '9007199254740992', '9007199254740993', '12345678901234567', '"a"', '"ü"', '""', `"${'x'.repeat(64)}"`, `"${'x'.repeat(65)}"`, '"a\\"b"', '"a\\\\"', '"\\u0061"', 'null', 'true', '[]']
  let checked = 0
  let failures = 0
  for (let n = 0; n < 6000 && failures < 5; n++) {
    let data = pick(base)
    for (let k = int(3); k > 0; k--) {
      const at = int(data.length + 1)
      data = data.slice(0, at) + pick(intruders) + data.slice(at + (rnd() < 0.5 ? 1 : 0))
    }
    const id = rnd() < 0.6 ? pick(['0', '1', '42', '"a"']) : pick(ids)
    let text = `{"type":"stream_data","stream_id":${id},"data":"${data}"}`
    switch (int(10)) {
      case 0: text = `{"type":"stream_data","data":"${data}","stream_id":${id}}`; break
      case 1: text = text.replace(':', ': '); break
      case 2: text = `${text} `; break
      case 3: text = text.replace('"}', '","extra":1}'); break
      case 4: text = text.slice(0, -1); break
      // Cut short and closed again: the frame may end anywhere, right after its id too.
      case 5: text = `{"type":"stream_data","stream_id":${id}}`; break
      case 6: text = `${text.slice(0, int(text.length))}"}`; break
      default: break
    }
    if (!sameAsReference(t, Buffer.from(text))) failures++
    checked++
  }
  const nearMisses = ['QU_D', 'QU-D', 'QUJ=D===', 'A===', '====', 'QQ==QQ==', '\\u0141AAA', 'ŁAAA', 'QUJD\\n', 'QU\\/D']
  for (const data of [...base, ...nearMisses]) {
    for (const id of ids) {
      if (!sameAsReference(t, Buffer.from(`{"type":"stream_data","stream_id":${id},"data":"${data}"}`))) failures++
      checked++
    }
  }
  t.equal(failures, 0, `${checked} frames answered as before`)
})
