import { test } from 'tap'
import { renderMarkdown } from '../../bench/lib/report.js'
import { evaluateTargets } from '../../bench/lib/targets.js'
import { stepCosts, stepSizes } from '../../bench/scenarios/idle.js'
import type { IdleResult, MemSample, Results } from '../../bench/lib/types.js'

const KiB = 1024

function mem (vmRss: number, heapUsed = 0): MemSample {
  return { vmRss, rss: vmRss, heapUsed, heapTotal: heapUsed, external: 0, arrayBuffers: 0 }
}

test('stepCosts: a step costs what its connections added in the upgrade pass plus what its hellos added in the hello pass', async (t) => {
  // Upgrade pass: 100 → 110 → 130; hello pass (after 130): → 150 → 165.
  const steps = stepCosts(mem(100, 10), [mem(110, 12), mem(130, 15)], [mem(150, 21), mem(165, 24)], [{ ok: 10 }, { ok: 10 }])
  t.same(steps, [
    { sessions: 10, total: 10, rssPerSession: (10 + 20) / 10, heapPerSession: (2 + 6) / 10 },
    { sessions: 10, total: 20, rssPerSession: (20 + 15) / 10, heapPerSession: (3 + 3) / 10 }
  ])
  const whole = steps.reduce((n, s) => n + s.rssPerSession * s.sessions, 0)
  t.equal(whole, 165 - 100, 'the steps add up to the whole growth from the baseline')
})

test('stepCosts: a step whose hellos all failed has no cost per session, not a division by zero', async (t) => {
  const [step] = stepCosts(mem(100), [mem(110)], [mem(120)], [{ ok: 0 }])
  t.equal(step.sessions, 0)
  t.ok(Number.isNaN(step.rssPerSession))
  t.ok(Number.isNaN(step.heapPerSession))
})

test('stepSizes: at least four steps that add up to the sessions asked for, none larger than a load process holds', async (t) => {
  t.same(stepSizes(19_488, 19_488), [4872, 4872, 4872, 4872])
  t.same(stepSizes(19_490, 19_488), [4872, 4873, 4872, 4873], 'sizes differ by one at most')
  t.same(stepSizes(5, 100), [1, 1, 1, 2], 'four steps as soon as there are four sessions')
  t.same(stepSizes(2, 100), [1, 1], 'one per session below four')
  t.same(stepSizes(1, 100), [1])
  const many = stepSizes(50_000, 9_000)
  t.equal(many.length, 6, 'more steps when a load process cannot hold a quarter')
  t.ok(many.every(n => n <= 9_000))
  for (const [cap, per] of [[50_000, 9_000], [19_490, 19_488], [7, 2], [1001, 3]]) {
    t.equal(stepSizes(cap, per).reduce((a, b) => a + b, 0), cap, `${cap} in steps of at most ${per} add up`)
  }
})

function idleResults (idle: Partial<IdleResult>): Results {
  const full: IdleResult = {
    requested: 50_000,
    capNote: 'the open-files limit is 20000',
    upgraded: 19_488,
    authenticated: 19_488,
    failed: 0,
    upgradesPerSec: 3000,
    hellosPerSec: 7000,
    cpuUsPerUpgrade: 190,
    cpuUsPerHello: 140,
    gatewayOpenFiles: 20_000,
    loadProcesses: 4,
    sourceAddresses: 20,
    baseline: mem(100 * 1048576, 20 * 1048576),
    connected: mem(240 * 1048576, 100 * 1048576),
    authed: mem(280 * 1048576, 150 * 1048576),
    rssPerSession: 8.5 * KiB,
    heapPerSession: 6.9 * KiB,
    rssPerConnectionBeforeHello: 7 * KiB,
    ...idle
  }
  return {
    machine: { cpuModel: 'cpu', cores: 2, memoryBytes: 2 ** 30, os: 'Linux', node: 'v24.0.0', commit: 'abc', dirty: false, loadavgAtStart: [0, 0, 0] },
    ranAt: '2026-11-24T00:00:00.000Z',
    options: { durationS: 5, warmupS: 1, rounds: 1, connections: 50 },
    scenarios: {
      idle: { name: 'idle', ranAt: '2026-11-24T00:00:00.000Z', commit: 'abc', node: 'v24.0.0', seconds: 30, options: {}, rows: [], available: true, notes: [], idle: full }
    }
  } as unknown as Results
}

const STEPS = [
  { sessions: 4872, total: 4872, rssPerSession: 10.36 * KiB, heapPerSession: 7.1 * KiB },
  { sessions: 4872, total: 9744, rssPerSession: 7.79 * KiB, heapPerSession: 6.9 * KiB },
  { sessions: 4872, total: 14_616, rssPerSession: 8.06 * KiB, heapPerSession: 6.9 * KiB },
  { sessions: 4872, total: 19_488, rssPerSession: 7.86 * KiB, heapPerSession: 6.9 * KiB }
]

test('the idle table and target give the cost per session of each step, when the run was stepped', async (t) => {
  const results = idleResults({ steps: STEPS })
  const md = renderMarkdown(results, [])
  t.match(md, '| Gateway RSS (heap) per session, step by step: the sessions of each step, what they added | 1–4,872: 10.36 KiB (heap 7.10); 4,873–9,744: 7.79 KiB (heap 6.90); 9,745–14,616: 8.06 KiB (heap 6.90); 14,617–19,488: 7.86 KiB (heap 6.90) |')
  const target = evaluateTargets(results).find(r => r.id === 'idle-rss')
  t.equal(target?.pass, true)
  t.match(target?.detail, 'measured at 19,488 sessions, not 50,000 (the open-files limit is 20000); RSS added per session, step by step: 10.36, 7.79, 8.06, 7.86 KiB')
})

test('a step with no session authenticated says so instead of a cost per session', async (t) => {
  const steps = [STEPS[0], { sessions: 0, total: 4872, rssPerSession: NaN, heapPerSession: NaN }, { ...STEPS[1], total: 9744 }]
  const results = idleResults({ steps })
  const md = renderMarkdown(results, [])
  t.match(md, '1–4,872: 10.36 KiB (heap 7.10); none authenticated after 4,872; 4,873–9,744: 7.79 KiB (heap 6.90)')
  t.notMatch(md, 'NaN')
  t.match(evaluateTargets(results).find(r => r.id === 'idle-rss')?.detail, 'step by step: 10.36, none, 7.79 KiB')
})

test('results written before the steps read as before: no step row, no step note', async (t) => {
  const results = idleResults({})
  t.notMatch(renderMarkdown(results, []), 'step by step')
  const target = evaluateTargets(results).find(r => r.id === 'idle-rss')
  t.notMatch(target?.detail, 'by step')
  t.match(target?.detail, 'measured at 19,488 sessions, not 50,000 (the open-files limit is 20000)')
})
