import { test } from 'tap'
import { randomString } from '../../lib/random.js'

test('randomString: the asked number of bytes in the asked encoding', async (t) => {
  t.match(randomString(16, 'hex'), /^[0-9a-f]{32}$/)
  t.match(randomString(32, 'base64url'), /^[A-Za-z0-9_-]{43}$/)
  t.match(randomString(16, 'base64'), /^[A-Za-z0-9+/]{22}==$/)
  t.equal(Buffer.from(randomString(12, 'base64url'), 'base64url').length, 12)
  t.equal(randomString(4096, 'hex').length, 8192, 'a whole pool at once')
})

test('randomString: no bytes handed out twice, across many refills of the pool', async (t) => {
  const seen = new Set<string>()
  // 5,000 × 28 bytes is 34 refills of the 4 KiB pool (the exact order of bytes is checked below, with a counter for randomness).
  for (let i = 0; i < 5000; i++) {
    seen.add(randomString(16, 'hex'))
    seen.add(randomString(12, 'hex'))
  }
  t.equal(seen.size, 10_000, 'every string is new')
})

test('randomString: the bytes look random (every byte value occurs, none far too often)', async (t) => {
  const counts = new Array<number>(256).fill(0)
  const bytes = Buffer.from(randomString(4096, 'hex') + randomString(4096, 'hex') + randomString(4096, 'hex') + randomString(4096, 'hex'), 'hex')
  for (const b of bytes) counts[b]++
  // 16,384 bytes: 64 expected per value; a fair source stays within 25-120 with overwhelming odds.
  t.ok(counts.every(c => c >= 25 && c <= 120), `byte counts ${Math.min(...counts)}..${Math.max(...counts)}`)
})

test('randomString: refuses sizes it cannot serve', async (t) => {
  for (const bad of [0, -1, 1.5, 4097, Number.NaN]) {
    t.throws(() => randomString(bad, 'hex'), RangeError, String(bad))
  }
})

test('randomString: hands out the pool byte by byte in order, refills only when a draw does not fit, and drops the rest', async (t) => {
  // randomFillSync mocked to fill with a running counter, so every byte's origin is known.
  let next = 0
  let fills = 0
  const { randomString: draw } = await t.mockImport<typeof import('../../lib/random.js')>(new URL('../../lib/random.js', import.meta.url).href, {
    'node:crypto': { randomFillSync: (buf: Buffer) => { fills++; for (let i = 0; i < buf.length; i++) buf[i] = next++ & 0xff; return buf } }
  })
  const bytes = (hex: string): number[] => [...Buffer.from(hex, 'hex')]
  t.same(bytes(draw(4, 'hex')), [0, 1, 2, 3], 'the first draw fills the pool')
  t.same(bytes(draw(3, 'hex')), [4, 5, 6], 'the next bytes, none twice')
  t.equal(fills, 1)
  draw(4096 - 7 - 16, 'hex')
  t.same(bytes(draw(16, 'hex')), Array.from({ length: 16 }, (_, i) => (4080 + i) & 0xff), 'a draw that ends exactly at the end of the pool')
  t.equal(fills, 1, 'an exact fit does not refill')
  t.same(bytes(draw(1, 'hex')), [4096 & 0xff], 'then the next byte is from a new fill')
  t.equal(fills, 2)
  draw(4090, 'hex')
  t.same(bytes(draw(8, 'hex')), Array.from({ length: 8 }, (_, i) => (8192 + i) & 0xff), 'a draw past the end takes a fresh pool; the 5 bytes left are never used')
  t.equal(fills, 3)
})
