import { test } from 'tap'
import type { IncomingMessage } from 'node:http'
import { genReqId } from '../app.js'

const asRequest = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage

test('genReqId: 32 random hex digits, never repeated across refills of the random pool', async (t) => {
  const seen = new Set<string>()
  // 1,000 ids span three refills of the 256-id pool.
  for (let i = 0; i < 1000; i++) {
    const id = genReqId(asRequest({}))
    if (!/^[0-9a-f]{32}$/.test(id)) t.fail(`malformed id ${id}`)
    seen.add(id)
  }
  t.equal(seen.size, 1000, 'every id is new')
})

test('genReqId: a sane client id is kept, a hostile one replaced', async (t) => {
  t.equal(genReqId(asRequest({ 'x-request-id': 'trace-1.a:b_c' })), 'trace-1.a:b_c')
  t.match(genReqId(asRequest({ 'x-request-id': 'x'.repeat(129) })), /^[0-9a-f]{32}$/)
  t.match(genReqId(asRequest({ 'x-request-id': 'bad id' })), /^[0-9a-f]{32}$/)
})
