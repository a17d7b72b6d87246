import { find, median } from '../scenarios/common.js'
import type { IdleStep, Results, Row, ScenarioName, ScenarioResult } from './types.js'

export interface TargetResult {
  id: string
  scenario: ScenarioName
  title: string
  requirement: string
  measured?: number
  display: string
  /** null: not measured in this run. */
  pass: boolean | null
  detail: string
  /** For a failed target: what the numbers say limits it. */
  limits?: string
  /** The requirement lies inside the confidence interval of the median ratio: this run's rounds cannot tell pass from fail. */
  withinNoise?: boolean
}

const RSS_LIMIT = 12 * 1024

/** The RSS each step of sessions added per session, in KiB: `10.85, 7.71, none` (a step that authenticated none). */
export function stepRss (steps: IdleStep[]): string {
  return steps.map(s => s.sessions === 0 ? 'none' : (s.rssPerSession / 1024).toFixed(2)).join(', ')
}

/** What each step of sessions added per session (bench/scenarios/idle.ts), for a run that could not reach 50,000. */
function stepsNote (steps: IdleStep[] | undefined): string {
  if (steps === undefined || steps.length < 2) return ''
  return `; RSS added per session, step by step: ${stepRss(steps)} KiB`
}

/** A ratio; with three decimals when two would round onto the threshold. */
function x (n: number, min?: number): string {
  const digits = min !== undefined && Math.abs(n - min) < 0.005 ? 3 : 2
  return `${n.toFixed(digits)}×`
}

/** A relative cost as words: `7.0% more`, or `7.0% less` for a negative one. */
function moreOrLess (fraction: number, digits: number): string {
  return `${(Math.abs(fraction) * 100).toFixed(digits)}% ${fraction < 0 ? 'less' : 'more'}`
}

function cpuLine (what: string, r: Row | undefined, per: string): string {
  if (r === undefined || r.proxyCpuPct === undefined) return ''
  return `${what} ${r.proxyCpuPct.toFixed(0)}% of a core${r.cpuUsPerOp !== undefined ? `, ${r.cpuUsPerOp.toFixed(1)} µs CPU per ${per}` : ''}`
}

/** Why the gateway is behind a comparator, from the CPU numbers of the same run. */
function cpuLimits (gw: Row, other: Row, otherName: string, per: string): string {
  const parts = [cpuLine('gateway', gw, per), cpuLine(otherName, other, per)].filter(s => s !== '')
  let text = `Measured: ${parts.join('; ')}.`
  if (gw.cpuUsPerOp !== undefined && other.cpuUsPerOp !== undefined) {
    text += ` The gateway spends ${(gw.cpuUsPerOp / other.cpuUsPerOp).toFixed(1)}× the CPU of ${otherName} per ${per}`
    text += (gw.proxyCpuPct ?? 0) >= 85 ? ' and its one JavaScript thread is saturated: it is CPU-bound.' : '.'
    if (gw.kernelUsPerOp !== undefined && other.kernelUsPerOp !== undefined) {
      const user = (r: Row): string => (r.userUsPerOp ?? (r.cpuUsPerOp ?? 0) - (r.kernelUsPerOp ?? 0)).toFixed(1)
      text += ` In user space ${user(gw)} against ${user(other)} µs, in the kernel ${gw.kernelUsPerOp.toFixed(1)} against ${other.kernelUsPerOp.toFixed(1)} µs.`
    }
  }
  return text
}

/**
 * `a ÷ b` round by round (the two were measured minutes apart at most, under the same load on
 * the box), for the rounds where both were measured. This 2-core machine drifts
 * between minutes, so the median of these paired ratios is steadier than a ratio of medians.
 */
export function pairedRatios (s: ScenarioResult | undefined, kase: string, a: string, b: string): number[] {
  const rows = s?.roundRows ?? []
  const ratios: number[] = []
  for (const ra of rows) {
    if (ra.case !== kase || ra.target !== a) continue
    const rb = rows.find(r => r.case === kase && r.target === b && r.round === ra.round)
    if (rb !== undefined && rb.value > 0) ratios.push(ra.value / rb.value)
  }
  return ratios
}

/** A confidence interval for the median of a sample, and the confidence it holds with. */
export interface MedianInterval { lo: number, hi: number, confidence: number }

/**
 * The distribution-free confidence interval for the median of `values`: the j-th lowest and
 * j-th highest value, for the largest j whose confidence (1 − 2·P(Binomial(n, ½) < j)) is at
 * least `level`; with too few values for `level`, the whole range and the confidence it has.
 * It assumes nothing about how the noise is spread, which on this shared machine is far from
 * normal (a process runs at one speed for a minute and at another the next).
 */
export function medianInterval (values: number[], level = 0.95): MedianInterval | undefined {
  const v = values.filter(n => Number.isFinite(n)).sort((a, b) => a - b)
  const n = v.length
  if (n < 2) return undefined
  // below[j] = P(X < j + 1) = P(X ≤ j) for X ~ Binomial(n, ½)
  const below: number[] = []
  let term = 0.5 ** n
  let sum = 0
  for (let i = 0; i <= n; i++) {
    sum += term
    below.push(sum)
    term = term * (n - i) / (i + 1)
  }
  let j = 1
  while (j + 1 <= n / 2 && 1 - 2 * below[j] >= level) j++
  return { lo: v[j - 1], hi: v[n - j], confidence: 1 - 2 * below[j - 1] }
}

interface Headline { ratio: number, range?: [number, number, number], interval?: MedianInterval }

/** The headline ratio `a ÷ b`: the median of the paired per-round ratios, else the ratio of the medians. */
export function headlineRatio (results: Results, scenario: ScenarioName, kase: string, a: Row, b: Row): Headline {
  const paired = pairedRatios(results.scenarios[scenario], kase, a.target, b.target)
  if (paired.length < 2) return { ratio: a.value / b.value }
  return { ratio: median(paired), range: [Math.min(...paired), Math.max(...paired), paired.length], interval: medianInterval(paired) }
}

/** How many rounds paired up, their lowest and highest ratio, and the confidence interval of the median. */
function rangeText (h: Headline, format: (n: number) => string): string {
  if (h.range === undefined) return ''
  const ci = h.interval === undefined ? '' : `; median within ${format(h.interval.lo)} to ${format(h.interval.hi)} at ${Math.floor(h.interval.confidence * 100)}% confidence`
  return ` (${h.range[2]} rounds: ${format(h.range[0])} to ${format(h.range[1])}${ci})`
}

/** Whether `threshold` lies inside the interval, so that the run cannot tell pass from fail. */
function straddles (h: Headline, threshold: number): boolean | undefined {
  return h.interval === undefined ? undefined : h.interval.lo < threshold && threshold <= h.interval.hi
}

/**
 * Why a target cannot be judged from these rows: error answers (a 401 or 502 is fast and would
 * count as throughput), or '' when every row is clean.
 */
function invalidRows (...rows: Row[]): string {
  const bad = rows.filter(r => r.errors > 0)
  return bad.map(r => `${r.label}: ${r.errors.toLocaleString('en-US')} errors (non-2xx answers or socket errors) over the rounds`).join('; ')
}

/** The display of a target left unjudged because its rows had error answers (the report's Result column reads it). */
export const NOT_VALID = 'not valid'

function notValid (target: Pick<TargetResult, 'id' | 'scenario' | 'title' | 'requirement'>, why: string): TargetResult {
  return { ...target, display: NOT_VALID, pass: null, detail: why }
}

/** One "gateway ≥ min × other" target: which rows, the threshold, and how its numbers read. */
interface RatioSpec {
  id: string
  scenario: ScenarioName
  kase: string
  title: string
  /** The comparator's target, and its name in the text. */
  other: string
  otherName: string
  min: number
  /** The unit of the CPU cost: request, message, KiB. */
  per: string
  /** The gateway's target in the rows; `gateway` unless said. */
  gateway?: string
  /** The requirement as shown; `≥ min× otherName` unless said. */
  requirement?: string
  /** The numbers behind the ratio; unless said, the two medians in the rows' unit (`medians of all rounds: ` when there were rounds). */
  numbers?: (gw: Row, other: Row) => string
}

function ratioTarget (results: Results, spec: RatioSpec): TargetResult {
  const { id, scenario, kase, title, other, otherName, min, per } = spec
  const gateway = spec.gateway ?? 'gateway'
  const s = results.scenarios[scenario]
  const rows = s?.rows ?? []
  const gw = find(rows, scenario, kase, gateway)
  const o = find(rows, scenario, kase, other)
  const requirement = spec.requirement ?? `≥ ${min}× ${otherName}`
  if (gw === undefined || o === undefined) {
    const missing = [gw === undefined ? gateway : undefined, o === undefined ? otherName : undefined].filter(m => m !== undefined).join(' and ')
    const detail = s === undefined ? 'scenario not run' : s.available === false ? (s.notes[0] ?? '') : `${missing} not measured`
    return { id, scenario, title, requirement, display: s?.available === false ? 'not available' : 'not measured', pass: null, detail }
  }
  const invalid = invalidRows(gw, o)
  if (invalid !== '') return notValid({ id, scenario, title, requirement }, invalid)
  const h = headlineRatio(results, scenario, kase, gw, o)
  const pass = h.ratio >= min
  const numbers = spec.numbers?.(gw, o) ?? `${h.range !== undefined ? 'medians of all rounds: ' : ''}${Math.round(gw.value).toLocaleString('en-US')} vs ${Math.round(o.value).toLocaleString('en-US')} ${gw.unit}`
  return {
    id,
    scenario,
    title,
    requirement,
    measured: h.ratio,
    display: x(h.ratio, min) + rangeText(h, n => x(n)),
    pass,
    withinNoise: straddles(h, min),
    detail: numbers,
    limits: pass ? undefined : cpuLimits(gw, o, otherName, per)
  }
}

const mib = (r: Row): string => (r.value / 1048576).toFixed(1)

export function evaluateTargets (results: Results): TargetResult[] {
  const out: TargetResult[] = []
  for (const kase of ['100 B', '10 KB']) {
    const http = { scenario: 'http', kase, per: 'request' } as const
    out.push(ratioTarget(results, { ...http, id: `http-nginx-${kase}`, other: 'nginx', otherName: 'nginx', min: 0.45, title: `HTTP proxy, auth: none, ${kase}: req/s vs nginx` }))
    out.push(ratioTarget(results, { ...http, id: `http-bare-${kase}`, other: 'bare', otherName: 'bare @fastify/http-proxy', min: 1.3, title: `HTTP proxy, auth: none, ${kase}: req/s vs bare @fastify/http-proxy` }))
  }
  for (const kase of ['100 B', '10 KB']) {
    const rows = results.scenarios.http?.rows ?? []
    const gw = find(rows, 'http', kase, 'gateway')
    const token = find(rows, 'http', kase, 'gateway-token')
    const key = find(rows, 'http', kase, 'gateway-apikey')
    const title = `HTTP auth: required (gateway token), ${kase}: extra cost per request`
    const requirement = '< 10% more'
    if (gw === undefined || token === undefined) {
      const info = gw !== undefined && key !== undefined ? ` With X-API-Key instead: ${moreOrLess(gw.value / key.value - 1, 1)}.` : ''
      out.push({ id: `http-auth-${kase}`, scenario: 'http', title, requirement, display: 'not measured', pass: null, detail: `no gateway token route measured (see notes).${info}` })
      continue
    }
    const invalid = invalidRows(gw, token)
    if (invalid !== '') {
      out.push(notValid({ id: `http-auth-${kase}`, scenario: 'http', title, requirement }, invalid))
      continue
    }
    const h = headlineRatio(results, 'http', kase, gw, token)
    const cost = h.ratio - 1
    const pass = cost < 0.10
    out.push({
      id: `http-auth-${kase}`,
      scenario: 'http',
      title,
      requirement,
      measured: cost,
      display: moreOrLess(cost, 1) + rangeText(h, n => `${((n - 1) * 100).toFixed(0)}%`),
      pass,
      withinNoise: straddles(h, 1.10),
      detail: `${Math.round(token.value).toLocaleString('en-US')} vs ${Math.round(gw.value).toLocaleString('en-US')} req/s (auth: none)${token.cpuUsPerOp !== undefined && gw.cpuUsPerOp !== undefined ? `; CPU per request ${moreOrLess(token.cpuUsPerOp / gw.cpuUsPerOp - 1, 0)}` : ''}`,
      limits: pass ? undefined : cpuLimits(token, gw, 'the auth: none route', 'request')
    })
  }
  for (const kase of ['64 B', '4 KB']) {
    const ws = { scenario: 'ws', kase, per: 'message', min: 1.0 } as const
    out.push(ratioTarget(results, { ...ws, id: `ws-nginx-${kase}`, other: 'nginx', otherName: 'nginx', title: `WebSocket echo, ${kase}: messages/s vs nginx` }))
    out.push(ratioTarget(results, { ...ws, id: `ws-bare-${kase}`, other: 'bare', otherName: 'bare @fastify/http-proxy', title: `WebSocket echo, ${kase}: messages/s vs bare @fastify/http-proxy` }))
  }
  // JSON frames (base64), as measured since the first run, and binary stream_data, the protocol's form for bulk bytes.
  const streams = { scenario: 'streams', kase: '16 streams', other: 'raw', otherName: 'the raw ws echo server', min: 0.5, per: 'KiB', requirement: '≥ 0.5× raw ws', numbers: (gw: Row, raw: Row) => `${mib(gw)} vs ${mib(raw)} MiB/s` } as const
  out.push(ratioTarget(results, { ...streams, id: 'streams-16', gateway: 'gateway', title: '/ws streams, 16 streams on one socket, JSON frames: bytes/s vs raw ws binary echo' }))
  out.push(ratioTarget(results, { ...streams, id: 'streams-binary-16', gateway: 'gateway-binary', title: '/ws streams, 16 streams on one socket, binary frames: bytes/s vs raw ws binary echo' }))
  {
    const s = results.scenarios.idle
    const idle = s?.idle
    const title = 'Idle authenticated /ws sessions: gateway RSS per session'
    const requirement = '≤ 12 KiB at 50,000 sessions'
    if (idle === undefined || !Number.isFinite(idle.rssPerSession)) {
      out.push({ id: 'idle-rss', scenario: 'idle', title, requirement, display: s?.available === false ? 'not available' : 'not measured', pass: null, detail: s === undefined ? 'scenario not run' : (s.notes[0] ?? '') })
    } else {
      const pass = idle.rssPerSession <= RSS_LIMIT
      const at = idle.authenticated.toLocaleString('en-US')
      const heapShare = idle.heapPerSession / idle.rssPerSession
      out.push({
        id: 'idle-rss',
        scenario: 'idle',
        title,
        requirement,
        measured: idle.rssPerSession,
        display: `${(idle.rssPerSession / 1024).toFixed(2)} KiB at ${at}`,
        pass,
        detail: `heap ${(idle.heapPerSession / 1024).toFixed(2)} KiB/session${idle.authenticated < 50_000 ? `; measured at ${at} sessions, not 50,000 (${idle.capNote ?? 'fewer sessions came up'})${stepsNote(idle.steps)}` : ''}`,
        limits: pass
          ? undefined
          : `The JS heap holds ${(idle.heapPerSession / 1024).toFixed(2)} KiB per session (${(heapShare * 100).toFixed(0)}% of the RSS growth); the rest is outside the heap (socket and ws buffers, malloc). Before its hello a connection already costs ${(idle.rssPerConnectionBeforeHello / 1024).toFixed(2)} KiB RSS.`
      })
    }
  }
  return out
}
