import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'tap'
import { callgrindWrapper, dumpTotal, gcInstructions, readDump } from '../../bench/lib/callgrind.js'
import { windowsRow } from '../../bench/scenarios/instructions.js'

/** The head and tail of a callgrind dump as valgrind 3.19 writes it (one file per thread). */
function dump (thread: number, summary: number, totals?: number): string {
  return [
    '# callgrind format', 'version: 1', 'creator: callgrind-3.19.0', 'pid: 26216', 'part: 1', `thread: ${thread}`, '',
    'positions: line', 'events: Ir', `summary: ${summary}`, '', 'fn=(1) main', '0 4476', '',
    ...(totals !== undefined ? [`totals: ${totals}`] : [])
  ].join('\n')
}

test('dumpTotal reads the totals line, else the summary; anything else is refused', async (t) => {
  t.equal(dumpTotal(dump(1, 420628668, 422350865)), 422350865)
  t.equal(dumpTotal(dump(1, 199)), 199)
  t.throws(() => dumpTotal('hello'), /not a callgrind dump/)
})

test('readDump sums the threads of one dump number; the main thread is thread 01', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'callgrind-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = join(dir, 'gateway.out')
  writeFileSync(`${out}.1-01`, dump(1, 400, 420))
  writeFileSync(`${out}.1-02`, dump(2, 30, 31))
  writeFileSync(`${out}.1-10`, dump(10, 0, 5))
  writeFileSync(`${out}.2-01`, dump(1, 9_000, 9_100))
  writeFileSync(`${out}-01`, dump(1, 1, 1)) // the dump at exit: not part of dump 1
  t.same(readDump(out, 1), { main: 420, mainGc: 0, all: 456, threads: 3 })
  t.same(readDump(out, 2), { main: 9_100, mainGc: 0, all: 9_100, threads: 1 })
  t.throws(() => readDump(out, 3), /wrote no dump 3/)
})

test('the wrapper counts each thread apart and follows machine code that V8 rewrites', async (t) => {
  const args = callgrindWrapper('/tmp/x.out')
  t.equal(args[0], 'valgrind')
  t.ok(args.includes('--tool=callgrind'))
  t.ok(args.includes('--callgrind-out-file=/tmp/x.out'))
  t.ok(args.includes('--separate-threads=yes'))
  t.ok(args.includes('--smc-check=all-non-file'))
})

test('gcInstructions adds the self cost of the collectors\' functions, not the inclusive cost of their calls', async (t) => {
  const text = [
    'events: Ir', 'summary: 1000', '',
    'ob=(1) /usr/bin/node', 'fl=(1) ???',
    'fn=(1) v8::internal::ScavengerCollector::CollectGarbage()',
    '0 100',
    'cfn=(2) v8::internal::Scavenger::ScavengePage(v8::internal::MutablePageMetadata*)',
    'calls=3 0',
    '0 5000', // inclusive cost of the call: not self cost
    '+1 20',
    'fn=(3) node::StreamBase::WriteBuffer()',
    '0 700',
    'cfn=(1)',
    'calls=1 0',
    '0 9999',
    'fn=(2)', // defined by the cfn= above
    '0 40',
    '* 2',
    'fn=(4) heap::base::SlotCallbackResult v8::internal::Scavenger::ScavengeObject<v8::internal::FullHeapObjectSlot>()',
    '-1 8',
    'fn=(5) v8::internal::MarkCompactCollector::CollectGarbage()',
    '0 30',
    'fn=(6) v8::internal::Heap::PerformGarbageCollection()',
    '0 1',
    'fn=(7) v8::internal::Heap::AllocateRaw()',
    '0 500',
    '', 'totals: 1000'
  ].join('\n')
  t.equal(gcInstructions(text), 100 + 20 + 40 + 2 + 8 + 30 + 1)
  t.equal(gcInstructions('events: Ir\nfn=(1) main\n0 5\n'), 0)
})

test('windowsRow: the median window outside the collectors, the means of the rest', async (t) => {
  const w = (main: number, mainGc: number, all: number): { main: number, mainGc: number, all: number, threads: number } => ({ main, mainGc, all, threads: 4 })
  // The third window holds a full collection: its work outside GC is like the others'.
  const row = windowsRow([w(200_000, 10_000, 300_000), w(210_000, 12_000, 310_000), w(290_000, 95_000, 520_000), w(205_000, 9_000, 300_000)], 1_000)
  t.equal(row.value, (195 + 196) / 2)
  t.equal(row.gcPerOp, (10 + 12 + 95 + 9) / 4)
  t.equal(row.allThreadsPerOp, (300 + 310 + 520 + 300) / 4)
  t.same(row.windowsPerOp, [200, 210, 290, 205])
  t.equal(row.threads, 4)
})
