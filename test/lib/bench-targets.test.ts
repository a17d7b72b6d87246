import { test } from 'tap'
import { evaluateTargets, medianInterval } from '../../bench/lib/targets.js'
import { medianRows } from '../../bench/scenarios/common.js'
import { cpuPerOp, cpuSeconds, cpuTimes } from '../../bench/lib/proc.js'
import type { Results, Row } from '../../bench/lib/types.js'

test('medianInterval: order statistics with at least 95% confidence, from the binomial', async (t) => {
  const ten = [5, 1, 9, 3, 7, 2, 10, 4, 8, 6]
  // n = 10: the 2nd and 9th values hold 1 − 2·11/1024 ≈ 97.9%; the 3rd and 8th only 89%.
  const i10 = medianInterval(ten)
  t.same([i10?.lo, i10?.hi], [2, 9])
  t.ok(Math.abs((i10?.confidence ?? 0) - (1 - 22 / 1024)) < 1e-12)

  // n = 5 cannot reach 95%: the whole range, at 1 − 2/32.
  const i5 = medianInterval([3, 1, 2, 5, 4])
  t.same([i5?.lo, i5?.hi, i5?.confidence], [1, 5, 1 - 2 / 32])

  // n = 20: the 6th and 15th values (1 − 2·P(X ≤ 5) ≈ 95.9%).
  const i20 = medianInterval(Array.from({ length: 20 }, (_, i) => 20 - i))
  t.same([i20?.lo, i20?.hi], [6, 15])
  t.ok((i20?.confidence ?? 0) >= 0.95)

  t.equal(medianInterval([1]), undefined, 'one value has no interval')
  t.same(medianInterval([2, NaN, 1]), { lo: 1, hi: 2, confidence: 0.5 }, 'values that are not numbers are left out')
})

function row (target: string, value: number, round: number): Row {
  return { scenario: 'http', case: '100 B', target, label: target, value, unit: 'req/s', errors: 0, loadavg: 0, round }
}

function httpResults (gateway: number[], bare: number[], token: number[] = []): Results {
  const roundRows = [...gateway.map((v, i) => row('gateway', v, i)), ...bare.map((v, i) => row('bare', v, i)), ...token.map((v, i) => row('gateway-token', v, i))]
  return {
    machine: { cpuModel: '', cores: 2, memoryBytes: 0, os: '', node: '', commit: '', dirty: false },
    ranAt: '',
    options: {},
    scenarios: { http: { name: 'http', ranAt: '', commit: '', seconds: 0, options: {}, rows: medianRows(roundRows), roundRows, available: true, notes: [] } }
  } as unknown as Results
}

test('a target inside the interval of the median is marked within noise; a clear one is not', async (t) => {
  // Per-round ratios 1.1, 1.2, ... 2.0: median 1.55, interval 1.2–1.9, which holds 1.3.
  const noisy = evaluateTargets(httpResults([11, 12, 13, 14, 15, 16, 17, 18, 19, 20], Array(10).fill(10))).find(x => x.id === 'http-bare-100 B')
  t.equal(noisy?.pass, true)
  t.equal(noisy?.withinNoise, true)
  t.match(noisy?.display, /10 rounds: 1\.10× to 2\.00×; median within 1\.20× to 1\.90× at 97% confidence/)

  // Ratios 1.4–1.6: the interval is above 1.3.
  const clear = evaluateTargets(httpResults([14, 15, 16, 14, 15, 16, 14, 15, 16, 15], Array(10).fill(10))).find(x => x.id === 'http-bare-100 B')
  t.equal(clear?.pass, true)
  t.equal(clear?.withinNoise, false)
})

test('a target measured with error answers is not judged: a 401 is fast and would count as throughput', async (t) => {
  const results = httpResults([15, 15, 15], [10, 10, 10])
  const http = results.scenarios.http
  if (http === undefined) throw new Error('no http scenario')
  http.rows = http.rows.map(r => r.target === 'gateway' ? { ...r, errors: 4_200 } : r)
  const target = evaluateTargets(results).find(x => x.id === 'http-bare-100 B')
  t.equal(target?.pass, null)
  t.equal(target?.display, 'not valid')
  t.match(target?.detail, /gateway: 4,200 errors/)
})

test('the auth: required cost reads as more or less, never as a negative "more"', async (t) => {
  const slower = evaluateTargets(httpResults([10, 10, 10], [5, 5, 5], [9, 9, 9])).find(x => x.id === 'http-auth-100 B')
  t.match(slower?.display, /^11\.1% more/)
  t.equal(slower?.pass, false)
  const faster = evaluateTargets(httpResults([10, 10, 10], [5, 5, 5], [11, 11, 11])).find(x => x.id === 'http-auth-100 B')
  t.match(faster?.display, /^9\.1% less/)
  t.equal(faster?.pass, true)
})

test('a missed target splits the CPU per request into user space and kernel, from the medians of the rounds (user time worked out when a row lacks it)', async (t) => {
  const results = httpResults([8, 8, 8], [10, 10, 10])
  const http = results.scenarios.http
  if (http === undefined) throw new Error('no http scenario')
  const cpu = (r: Row, i: number): Row => r.target === 'gateway'
    ? { ...r, proxyCpuPct: 97, cpuUsPerOp: 120 + i, kernelUsPerOp: 50 + i, userUsPerOp: 70 }
    : { ...r, proxyCpuPct: 60, cpuUsPerOp: 40, kernelUsPerOp: 30 }
  http.roundRows = (http.roundRows ?? []).map(cpu)
  http.rows = medianRows(http.roundRows)
  const target = evaluateTargets(results).find(x => x.id === 'http-bare-100 B')
  t.equal(target?.pass, false)
  t.match(target?.limits, /gateway 97% of a core, 121\.0 µs CPU per request/)
  t.match(target?.limits, /In user space 70\.0 against 10\.0 µs, in the kernel 51\.0 against 30\.0 µs\./)
})

test('cpuTimes reads user and kernel time of a live process from /proc; cpuSeconds is their sum', async (t) => {
  const before = cpuTimes(process.pid)
  const until = Date.now() + 50
  while (Date.now() < until) Math.sqrt(Math.random())
  const after = cpuTimes(process.pid)
  t.ok(after.user >= before.user && after.system >= before.system, 'both only grow')
  t.ok(after.user + after.system > before.user + before.system, 'a busy loop is counted')
  t.ok(Math.abs(cpuSeconds(process.pid) - (after.user + after.system)) < 1, 'cpuSeconds is user + system')
  t.same(cpuTimes(2 ** 30), { user: 0, system: 0 }, 'a process that is gone counts nothing')
})

test('cpuPerOp divides a CPU delta by the operations served, whole and in its two parts', async (t) => {
  t.same(cpuPerOp({ user: 0.3, kernel: 0.1 }, 1_000), { cpuUsPerOp: 400, kernelUsPerOp: 100, userUsPerOp: 300 })
  t.same(cpuPerOp({ user: 0.3, kernel: 0.1 }, 0), {}, 'nothing per operation when none was served')
})

test('a ratio target without its rows says what is missing: the scenario, its note when it could not run, or the target', async (t) => {
  const onlyBare = httpResults([], [10, 10, 10])
  const http = evaluateTargets(onlyBare).find(x => x.id === 'http-nginx-100 B')
  t.same([http?.display, http?.pass, http?.detail], ['not measured', null, 'gateway and nginx not measured'])

  const streams = evaluateTargets(onlyBare).find(x => x.id === 'streams-16')
  t.same([streams?.display, streams?.detail], ['not measured', 'scenario not run'])

  const unavailable = httpResults([15], [10])
  unavailable.scenarios.streams = { name: 'streams', ranAt: '', commit: '', seconds: 0, options: {}, rows: [], available: false, notes: ['/ws is not there'] }
  const binary = evaluateTargets(unavailable).find(x => x.id === 'streams-binary-16')
  t.same([binary?.display, binary?.pass, binary?.detail, binary?.requirement], ['not available', null, '/ws is not there', '≥ 0.5× raw ws'])
})

test('the streams targets compare MiB/s of the gateway target they name with the raw echo, round by round', async (t) => {
  const mib = 1048576
  const rows = (target: string, values: number[]): Row[] => values.map((v, i) => ({ scenario: 'streams', case: '16 streams', target, label: target, value: v * mib, unit: 'B/s', errors: 0, loadavg: 0, round: i }))
  // The raw echo moves by round, so the median of the per-round ratios differs from the ratio of the medians.
  const roundRows = [...rows('raw', [400, 500, 300]), ...rows('gateway', [180, 230, 165]), ...rows('gateway-binary', [320, 450, 240])]
  const results = httpResults([15], [10])
  results.scenarios.streams = { name: 'streams', ranAt: '', commit: '', seconds: 0, options: {}, rows: medianRows(roundRows), roundRows, available: true, notes: [] }
  const targets = evaluateTargets(results)
  const json = targets.find(x => x.id === 'streams-16')
  // Ratios by round 0.45, 0.46, 0.55: median 0.46; the medians' ratio would be 180 / 400 = 0.45.
  t.same([json?.pass, json?.measured, json?.detail], [false, 0.46, '180.0 vs 400.0 MiB/s'])
  t.match(json?.display, /^0\.46× \(3 rounds: 0\.45× to 0\.55×/)
  const binary = targets.find(x => x.id === 'streams-binary-16')
  t.same([binary?.pass, binary?.measured, binary?.detail], [true, 0.8, '320.0 vs 400.0 MiB/s'])
  t.equal(binary?.limits, undefined, 'a met target has no limits text')

  const noRaw = httpResults([15], [10])
  noRaw.scenarios.streams = { name: 'streams', ranAt: '', commit: '', seconds: 0, options: {}, rows: medianRows(roundRows.filter(r => r.target !== 'raw')), available: true, notes: [] }
  t.equal(evaluateTargets(noRaw).find(x => x.id === 'streams-binary-16')?.detail, 'the raw ws echo server not measured')
})

test('an HTTP ratio target reads its numbers as the medians of all rounds, in the rows\' unit', async (t) => {
  const target = evaluateTargets(httpResults([15, 12, 16], [10, 10, 10])).find(x => x.id === 'http-bare-100 B')
  t.equal(target?.detail, 'medians of all rounds: 15 vs 10 req/s')
  t.equal(target?.requirement, '≥ 1.3× bare @fastify/http-proxy')
})
