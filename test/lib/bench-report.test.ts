import { test } from 'tap'
import { chartSvg } from '../../bench/lib/chart.js'
import { renderMarkdown } from '../../bench/lib/report.js'
import { medianRows } from '../../bench/scenarios/common.js'
import type { Results, Row } from '../../bench/lib/types.js'

const MiB = 1048576

/** One round's row of the 16-stream case: MiB/s, gateway (or echo server) CPU µs per KiB, load client CPU %. */
function streamsRow (target: string, round: number, mibPerSec: number, cpuUsPerOp: number, loadCpuPct: number): Row {
  return { scenario: 'streams', case: '16 streams', target, label: `${target} label`, value: mibPerSec * MiB, unit: 'B/s', proxyCpuPct: 80, cpuUsPerOp, loadCpuPct, errors: 0, loadavg: 0, round }
}

/** Three rounds of streams in which binary frames reach 0.8× the raw echo and JSON frames 0.5× (medians of the rounds' ratios). */
function streamsResults (machine: Partial<Results['machine']> = {}): Results {
  const roundRows = [
    ...[100, 100, 100].map((v, i) => streamsRow('raw', i, v, 2, 95)),
    ...[80, 70, 90].map((v, i) => streamsRow('gateway-binary', i, v, 2.5, 85)),
    ...[50, 60, 40].map((v, i) => streamsRow('gateway', i, v, 3.5, 90))
  ]
  return {
    machine: { cpuModel: 'cpu', cores: 2, memoryBytes: 2 ** 30, os: 'Linux', node: 'v24.0.0', commit: 'abc', dirty: false, loadavgAtStart: [0, 0, 0], ...machine },
    ranAt: '2026-11-24T00:00:00.000Z',
    options: { durationS: 10, warmupS: 1, rounds: 3, connections: 50 },
    scenarios: {
      streams: { name: 'streams', ranAt: '2026-11-24T00:00:00.000Z', commit: 'abc', node: 'v24.0.0', seconds: 1, options: {}, rows: medianRows(roundRows), roundRows, available: true, notes: [] }
    }
  } as unknown as Results
}

test('chartSvg: a panel per measured case, the ratios the targets give, bars scaled to the largest, names escaped', async (t) => {
  const svg = chartSvg(streamsResults({ cpuModel: 'A<B & "C"', dirty: true }))
  t.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'))
  t.ok(svg.endsWith('</svg>\n'))
  t.match(svg, '/ws streams, 16 streams on one socket (echoed bytes/s)')
  t.notMatch(svg, 'HTTP', 'a scenario without rows has no panel')
  t.notMatch(svg, '1 stream on one socket', 'nor does a case without rows')
  t.match(svg, 'binary frames = 0.80× raw, JSON frames = 0.50× raw', 'the median of the rounds\' ratios, binary first')
  t.match(svg, '>gateway, JSON frames<', 'the JSON row is named as such on the streams panel')
  t.match(svg, '>gateway, binary frames<')
  t.match(svg, '>100.0 MiB/s<')
  const widths = [...svg.matchAll(/<rect x="200" [^>]*width="([\d.]+)"/g)].map(m => Number(m[1]))
  t.same(widths, [400, 320, 200], 'raw (the largest) is the full 400 px, the others in proportion')
  t.match(svg, 'A&lt;B &amp; &quot;C&quot;, 2 cores, Node v24.0.0, commit abc (dirty), 2026-11-24', 'the footer, escaped')
  t.notMatch(svg, 'Idle /ws sessions', 'no idle line without an idle run')
})

test('chartSvg: a ratio line that would run into its panel\'s title goes on a line of its own', async (t) => {
  const results = streamsResults()
  const roundRows = [0, 1, 2].flatMap(i => ['raw', 'gateway-binary', 'gateway'].map(target => ({ ...streamsRow(target, i, 100, 2, 90), case: '1 stream' })))
  const streams = results.scenarios.streams as NonNullable<Results['scenarios']['streams']>
  streams.roundRows = [...(streams.roundRows ?? []), ...roundRows]
  streams.rows.push(...medianRows(roundRows))
  results.scenarios.http = { ...streams, name: 'http', rows: [{ ...streams.rows[0], scenario: 'http', case: '100 B', target: 'gateway' }, { ...streams.rows[0], scenario: 'http', case: '100 B', target: 'nginx' }], roundRows: [] } as unknown as Results['scenarios']['http']
  const svg = chartSvg(results)
  const y = (pattern: RegExp): number => Number(pattern.exec(svg)?.[1])
  const title16 = y(/<text x="12" y="(\d+)" class="t">\/ws streams, 16 streams/)
  t.equal(y(/<text x="748" y="(\d+)" class="s" text-anchor="end">binary frames = 0.80× raw/), title16 + 16, 'the long streams title: the ratios one line below it')
  const titleHttp = y(/<text x="12" y="(\d+)" class="t">HTTP, 100 B/)
  t.equal(y(/<text x="748" y="(\d+)" class="s" text-anchor="end">gateway = /), titleHttp, 'a short title keeps its ratios beside it')
})

test('chartSvg: the idle line, when idle sessions were measured', async (t) => {
  const results = streamsResults()
  results.scenarios.idle = { idle: { rssPerSession: 9.05 * 1024, authenticated: 19_488, hellosPerSec: 7481.4 } } as unknown as Results['scenarios']['idle']
  t.match(chartSvg(results), 'Idle /ws sessions: 9.1 KiB RSS per session at 19,488 sessions, 7,481 hellos/s')
})

test('renderMarkdown: rounds and durations per section, none run-wide (the last scenario run may have none)', async (t) => {
  const results = streamsResults()
  results.scenarios.streams!.options = { durationS: 10, warmupS: 1, rounds: 3 }
  // A later idle run leaves its own options as the run's: no rounds of its own.
  results.options = { ...results.options, rounds: 7 }
  const md = renderMarkdown(results, [])
  t.match(md, '| Durations | each timed section names its rounds, seconds per measurement and warm-up;')
  t.match(md, ', 3 round(s) of 10 s per measurement after 1 s of warm-up,')
  t.notMatch(md, '7 round(s)')
})

test('renderMarkdown: the streams table gives MiB/s, CPU per KiB and the load client\'s CPU of each target', async (t) => {
  const md = renderMarkdown(streamsResults(), [])
  t.match(md, '| Case | Target | MiB/s | CPU % (gateway / echo server) | CPU µs/KiB | CPU % (load client) | errors |')
  t.match(md, '| 16 streams | raw label | 100.0 | 80 | 2.00 | 95 | 0 |')
  t.match(md, '| 16 streams | gateway-binary label | 80.0 | 80 | 2.50 | 85 | 0 |')
  t.match(md, '| 16 streams | gateway label | 50.0 | 80 | 3.50 | 90 | 0 |')
})
