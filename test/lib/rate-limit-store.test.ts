import { test } from 'tap'
import { WindowCounter } from '../../lib/rate-limit-store.js'

test('fixed windows: counts per key, a new window after it ends, reset time left', async (t) => {
  const counter = new WindowCounter(1000)
  const first = counter.hit('a', 0)
  t.same([first.count, counter.resetMs(first, 0)], [1, 1000])
  const second = counter.hit('a', 400)
  t.same([second.count, counter.resetMs(second, 400)], [2, 600])
  t.equal(counter.hit('b', 400).count, 1, 'keys are counted apart')
  const next = counter.hit('a', 1000)
  t.same([next.count, counter.resetMs(next, 1000)], [1, 1000], 'the window ended')
})

test('bounded: past the limit the window that started longest ago goes', async (t) => {
  const counter = new WindowCounter(60_000, 3)
  counter.hit('a', 0)
  counter.hit('b', 1)
  counter.hit('c', 2)
  counter.hit('a', 3)
  counter.hit('d', 4)
  t.equal(counter.size, 3)
  t.equal(counter.hit('b', 5).count, 2, 'b is kept')
  t.equal(counter.hit('c', 6).count, 2, 'c is kept')
  t.equal(counter.hit('d', 7).count, 2, 'd is kept')
  t.equal(counter.hit('a', 8).count, 1, 'a started first and was dropped, though hit since')
})

test('a key whose window ended starts a new one at the end of the order', async (t) => {
  const counter = new WindowCounter(10, 2)
  counter.hit('a', 0)
  counter.hit('b', 5)
  t.equal(counter.hit('a', 10).count, 1, 'a new window for a')
  counter.hit('c', 11)
  t.equal(counter.size, 2)
  t.equal(counter.hit('a', 12).count, 2, 'a (newest window) kept; b (oldest) dropped')
  t.equal(counter.hit('b', 13).count, 1)
})
