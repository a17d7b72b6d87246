import { performance } from 'node:perf_hooks'
import { test } from 'tap'
import { Deadlines, UNSCHEDULED, type Timed } from '../../lib/session/deadlines.js'

class Item implements Timed {
  deadlineSlot = UNSCHEDULED
  /** When the deadline set last is due (performance.now() ms). */
  due = Infinity
  fired = 0
  constructor (readonly name: string, private readonly onPass: (item: Item) => void) {}
  deadlinePassed (): void {
    this.fired++
    this.onPass(this)
  }
}

function set (deadlines: Deadlines<Item>, item: Item, ms: number): void {
  item.due = performance.now() + ms
  deadlines.set(item, ms)
}

test('deadlines pass in order; a cleared one never passes; a new one replaces the old', async (t) => {
  const deadlines = new Deadlines<Item>()
  const order: string[] = []
  let done: () => void = () => {}
  const finished = new Promise<void>(resolve => { done = resolve })
  const make = (name: string): Item => new Item(name, (item) => {
    order.push(item.name)
    if (deadlines.size === 0) done()
  })
  const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map(make)
  set(deadlines, c, 30)
  set(deadlines, a, 5)
  set(deadlines, b, 15)
  set(deadlines, d, 10)
  set(deadlines, e, 1)
  deadlines.clear(d)
  // Later than it was, then earlier than everything: only the last one counts.
  set(deadlines, b, 40)
  set(deadlines, e, 0)
  t.equal(deadlines.size, 4)
  await finished
  // The order the due times say (a loaded machine may take more than the 5 ms between e's and a's).
  const byDue = [a, b, c, e].sort((x, y) => x.due - y.due).map(item => item.name)
  t.same(order, byDue)
  if (e.due < a.due) t.same(order, ['e', 'a', 'c', 'b'])
  t.equal(d.fired, 0, 'the cleared deadline did not pass')
  t.equal(deadlines.size, 0)
})

test('a deadline set while deadlines pass waits for a later turn; one cleared by another in the same batch does not pass', async (t) => {
  const deadlines = new Deadlines<Item>()
  const seen: string[] = []
  let done: () => void = () => {}
  const finished = new Promise<void>(resolve => { done = resolve })
  const victim = new Item('victim', () => { seen.push('victim') })
  const again = new Item('again', (item) => {
    seen.push(`${item.name}${item.fired}`)
    if (item.fired < 3) deadlines.set(item, 0)
    else done()
  })
  const killer = new Item('killer', () => {
    seen.push('killer')
    deadlines.clear(victim)
  })
  set(deadlines, killer, 0)
  set(deadlines, victim, 0)
  set(deadlines, again, 0)
  // Due together: they pass in one batch, the killer first (it was set first with the same due time or earlier).
  await finished
  t.notOk(seen.includes('victim'), 'cleared by an earlier deadline of its batch')
  t.same(seen.filter(s => s.startsWith('again')), ['again1', 'again2', 'again3'])
  t.equal(deadlines.size, 0)
})

test('many deadlines, set, moved and cleared at random: each passes once, never early, in order', async (t) => {
  let seed = 7
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return seed / 2 ** 32
  }
  const deadlines = new Deadlines<Item>()
  const passed: Item[] = []
  let done: () => void = () => {}
  const finished = new Promise<void>(resolve => { done = resolve })
  const early: string[] = []
  const items = Array.from({ length: 400 }, (_, i) => new Item(String(i), (item) => {
    if (item.due > performance.now()) early.push(item.name)
    passed.push(item)
    if (deadlines.size === 0) done()
  }))
  for (let round = 0; round < 3; round++) {
    for (const item of items) {
      if (rnd() < 0.8) set(deadlines, item, Math.floor(rnd() * 40))
      else {
        deadlines.clear(item)
        item.due = Infinity
      }
    }
  }
  const expected = items.filter(i => i.due !== Infinity).length
  t.equal(deadlines.size, expected)
  await finished
  t.equal(passed.length, expected, 'every scheduled item passed')
  t.ok(items.every(i => i.fired === (i.due === Infinity ? 0 : 1)), 'once each, and only those still scheduled')
  t.same(early, [], 'none before its time')
  // The test notes `due` a few microseconds apart from the heap's own clock reading, so near-equal
  // deadlines may swap by that much; out of order by more is a bug.
  t.ok(passed.every((item, k) => k === 0 || passed[k - 1].due <= item.due + 2), 'in the order of their deadlines')
})
