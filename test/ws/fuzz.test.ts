import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { test } from 'tap'
import { WsErrorCode } from '../../lib/errors.js'
import {
  AuthResultFrameSchema, ErrorFrameSchema, PongFrameSchema, ServerStreamCloseFrameSchema, ServerStreamDataFrameSchema
} from '../../schemas/frames.js'
import { binaryFrame, startGateway, WsClient, type Frame } from './helpers.js'

const serverFrame = TypeCompiler.Compile(Type.Union([
  AuthResultFrameSchema, ErrorFrameSchema, PongFrameSchema, ServerStreamCloseFrameSchema, ServerStreamDataFrameSchema
]))

/** A small seeded PRNG (mulberry32), so a failure can be replayed with its seed. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function fuzzer (seed: number, allowHello: boolean): () => string | Buffer {
  const rnd = prng(seed)
  const int = (n: number): number => Math.floor(rnd() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]
  const randomString = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(int(0x3000))).join('')
  const types = allowHello
    ? ['hello', 'stream_open', 'stream_data', 'stream_close', 'ping', 'pong', 'error', 'auth_result', '', 'HELLO', 'stream_open ']
    : ['stream_open', 'stream_data', 'stream_close', 'ping', 'pong', 'error', 'auth_result', '', 'HELLO']
  const ids: unknown[] = [0, 1, 2, 3, 'a', 'b', -1, -0.5, 1.5, 2 ** 53, 2 ** 53 + 2, 1e308, '', 'x'.repeat(65), 'x'.repeat(64), null, true, [], {}, '0', Number.MAX_SAFE_INTEGER]
  const datas: unknown[] = ['', 'aGVsbG8=', 'QQ==', 'QUJD', '!!!!', 'abc', '====', 'QQ=', 'Q===', 'aGVs bG8=', 'aGVsbG8', 12, null, ['aGk='], 'a'.repeat(1000)]
  const upstreams: unknown[] = [undefined, 'echo', 'blackhole', 'tcp', 'nope', '', 42, null]
  const deep = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)
  const value = (depth = 0): unknown => {
    switch (int(depth > 3 ? 5 : 8)) {
      case 0: return int(1e6) - 5e5
      case 1: return rnd()
      case 2: return randomString(int(20))
      case 3: return pick([true, false, null])
      case 4: return pick(ids)
      case 5: return Array.from({ length: int(4) }, () => value(depth + 1))
      case 6: return Object.fromEntries(Array.from({ length: int(4) }, () => [randomString(int(8)), value(depth + 1)]))
      default: return pick(['__proto__', 'constructor', 'toString'])
    }
  }
  /** A binary stream_data for a valid or invalid id, whole or cut short, its header bytes sometimes changed. */
  const binaryMessage = (): Buffer => {
    // 'fz' is a binary stream the test keeps open, so some of these are echoed as binary messages.
    const id = pick([0, 1, 2, 3, 'a', 'b', '0', 'fz', 'fz', 'fz', Number.MAX_SAFE_INTEGER, 'x'.repeat(64), 'x'.repeat(65), 2 ** 53])
    const message = binaryFrame(id, Buffer.from(randomString(int(100))))
    if (rnd() < 0.3) message[int(Math.min(message.length, 12))] = int(256)
    return rnd() < 0.2 ? message.subarray(0, int(message.length)) : message
  }
  return () => {
    switch (int(14)) {
      case 0: return rnd() < 0.5 ? Buffer.from(Array.from({ length: int(200) }, () => int(256))) : binaryMessage()
      case 1: return randomString(int(300)) // text that is not JSON
      case 2: return JSON.stringify(value())
      case 3: return pick([deep(50_000), `{"type":"ping","deep":${deep(100_000)}}`, '{"type":"ping"', '{"type":"ping",}', 'null', '"ping"', '[]', '{}', '{"type":null}'])
      case 4: return `{"__proto__":{"type":"ping"},"type":${JSON.stringify(pick(types))},"stream_id":1}`
      case 5: return JSON.stringify({ type: 'stream_data', stream_id: pick(ids), data: 'A'.repeat(4 * int(10_000)) })
      // Well-formed frames in random order, so that streams really open, carry data and close.
      case 6: return JSON.stringify({ type: 'stream_open', stream_id: pick(ids), upstream: pick(upstreams), target: rnd() < 0.2 ? '127.0.0.1:1' : undefined, binary: rnd() < 0.5 ? pick([true, true, true, false, 1, 'yes', null]) : undefined })
      case 7: return JSON.stringify({ type: 'stream_data', stream_id: pick(ids), data: Buffer.from(randomString(int(100))).toString('base64') })
      case 8: return JSON.stringify(rnd() < 0.5 ? { type: 'stream_close', stream_id: pick(ids) } : { type: allowHello ? 'hello' : 'ping', device_id: 'd', token: 't' })
      default: {
        const frame: Record<string, unknown> = { type: pick(types) }
        if (rnd() < 0.8) frame.stream_id = pick(ids)
        if (rnd() < 0.5) frame.data = pick(datas)
        if (rnd() < 0.4) frame.upstream = pick(upstreams)
        if (rnd() < 0.2) frame.target = pick(['127.0.0.1:1', 'x', '[::1]:99999', 42])
        if (rnd() < 0.3) frame.device_id = pick(['d', '', 7, 'x'.repeat(200)])
        if (rnd() < 0.3) frame.token = pick(['t', '', null])
        if (rnd() < 0.2) frame[randomString(5)] = value()
        return JSON.stringify(frame)
      }
    }
  }
}

async function send (c: WsClient, next: () => string | Buffer, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    c.send(next())
    if (c.socket.bufferedAmount > 4 * 1024 * 1024) await new Promise(resolve => setImmediate(resolve))
  }
}

/** Sends `n` fuzz frames, then waits for the pong that follows them all; returns every frame received. */
async function blast (c: WsClient, next: () => string | Buffer, n: number): Promise<Frame[]> {
  await send(c, next, n)
  c.send({ type: 'ping', marker: 'end-of-fuzz' })
  const got: Frame[] = []
  for (;;) {
    const f = await c.frame(30_000)
    if (f.type === 'pong' && f.marker === 'end-of-fuzz') return got
    got.push(f)
  }
}

test('thousands of random and malformed frames: errors, never a crash, and the session still works', async (t) => {
  // A fixed seed in CI keeps a failure reproducible; FUZZ_SEED=random explores new inputs.
  const seed = process.env.FUZZ_SEED === 'random' ? Date.now() % 1_000_000 : Number(process.env.FUZZ_SEED ?? 424242)
  t.comment(`FUZZ_SEED=${seed}`)
  const gw = await startGateway(t, { max_streams: 16 }, { logs: process.env.FUZZ_LOGS === '1' })
  if (process.env.FUZZ_LOGS === '1') t.teardown(() => { for (const l of gw.logs) if (l.includes('"level":50')) console.error(l.slice(0, 1500)) })
  const c = await WsClient.connect(gw.wsUrl)

  // Before the hello: every frame is refused with one error frame, and the connection stays.
  await send(c, fuzzer(seed, false), 500)
  const before: Frame[] = []
  for (let i = 0; i < 500; i++) before.push(await c.frame(30_000))
  t.ok(before.every(f => f.type === 'error' && (f.code === 'BAD_FRAME' || f.code === 'NOT_AUTHENTICATED')), 'only BAD_FRAME and NOT_AUTHENTICATED')

  t.match(await c.hello(), { allowed: true })
  c.openStream('fz', 'echo', undefined, true)
  const after = await blast(c, fuzzer(seed + 1, true), 4000)
  t.ok(after.some(f => f.binary === true), 'some streams answered in binary stream_data')
  const invalid = after.filter(f => !serverFrame.Check(f))
  t.same(invalid.slice(0, 3), [], 'every frame the gateway sent matches its schema')
  const codes = new Set(after.filter(f => f.type === 'error').map(f => f.code))
  t.ok([...codes].every(code => Object.values(WsErrorCode).includes(code)), `known codes only: ${[...codes].join(', ')}`)
  t.notOk(codes.has('INTERNAL_ERROR'), 'no frame made the gateway fail')
  t.ok(codes.has('BAD_FRAME'))
  t.equal(c.socket.readyState, c.socket.OPEN, 'the connection is up')

  // A normal stream still works on the same connection.
  c.openStream('after-fuzz', 'echo')
  c.write('after-fuzz', 'still alive')
  const { bytes } = await c.read('after-fuzz', 'still alive'.length)
  t.equal(bytes.toString(), 'still alive')
  t.ok(gw.app.sessions.stats().streams <= 16)

  // And so does a new session.
  const d = await WsClient.connect(gw.wsUrl)
  t.match(await d.hello(), { allowed: true })
  d.close()
  c.close()
  await c.closed
})
