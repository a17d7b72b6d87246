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
  // 5,000 × 28 bytes is 34 refills of the 4 KiB pool; 4096 is no multiple of 28, so draws fall at every place near its end.
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
