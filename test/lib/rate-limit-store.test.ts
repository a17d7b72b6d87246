import { test } from 'tap'
import { WindowCounter } from '../../lib/rate-limit-store.js'

test('fixed windows: counts per key, a new window after it ends, reset time left', async (t) => {
  const counter = new WindowCounter()
  t.same(counter.hit('a', 1000, 0), { count: 1, resetMs: 1000 })
  t.same(counter.hit('a', 1000, 400), { count: 2, resetMs: 600 })
  t.same(counter.hit('b', 1000, 400), { count: 1, resetMs: 1000 }, 'keys are counted apart')
  t.same(counter.hit('a', 1000, 1000), { count: 1, resetMs: 1000 }, 'the window ended')
})

test('bounded: past the limit the least recently used bucket goes', async (t) => {
  const counter = new WindowCounter(3)
  counter.hit('a', 60_000, 0)
  counter.hit('b', 60_000, 0)
  counter.hit('c', 60_000, 0)
  counter.hit('a', 60_000, 1)
  counter.hit('d', 60_000, 2)
  t.equal(counter.size, 3)
  t.equal(counter.hit('a', 60_000, 3).count, 3, 'a was used recently and kept')
  t.equal(counter.hit('b', 60_000, 4).count, 1, 'b was the oldest and dropped')
})
