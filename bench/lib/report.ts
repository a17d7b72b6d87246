import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ProfileSummary } from './profile.js'
import { evaluateTargets, NOT_VALID, pairedRatios, type TargetResult } from './targets.js'
import { median } from '../scenarios/common.js'
import type { IdleStep, Results, Row, ScenarioName, ScenarioResult } from './types.js'

/** What the last --profile run of a scenario found, as saved by the runner. */
export interface SavedProfile extends ProfileSummary {
  scenario: ScenarioName
  ranAt: string
  commit: string
}

function fmt (n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '–'
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function mib (bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}

function result (t: TargetResult): string {
  if (t.pass === null) return t.display === NOT_VALID ? '**not valid** (errors)' : 'not measured'
  const verdict = t.pass ? '**PASS**' : '**FAIL**'
  // The run's rounds put the requirement inside the median's confidence interval: say so beside the verdict.
  return t.withinNoise === true ? `${verdict} (within noise)` : verdict
}

/** A markdown table; the first `left` columns are text (left-aligned), the rest numbers. */
function table (head: string[], rows: string[][], left = 2): string {
  const align = head.map((_, i) => i < left ? '---' : '---:').join('|')
  return [`| ${head.join(' | ')} |`, `|${align}|`, ...rows.map(r => `| ${r.join(' | ')} |`)].join('\n')
}

/** The gateway's value ÷ another's: the median of the per-round ratios when there are rounds (see pairedRatios). */
function gatewayRatio (s: ScenarioResult, kase: string, gw: Row, r: Row): number {
  if (gw === r) return 1
  const paired = pairedRatios(s, kase, gw.target, r.target)
  return paired.length >= 2 ? median(paired) : gw.value / r.value
}

function throughputTable (s: ScenarioResult, reference: string, perLabel: string): string {
  const cases = [...new Set(s.rows.map(r => r.case))]
  const out: string[][] = []
  for (const kase of cases) {
    const rows = s.rows.filter(r => r.case === kase)
    const gw = rows.find(r => r.target === reference)
    for (const r of rows) {
      out.push([
        kase,
        r.label,
        fmt(r.value),
        gw !== undefined ? `${gatewayRatio(s, kase, gw, r).toFixed(2)}×` : '–',
        fmt(r.p50Ms, 2),
        fmt(r.p99Ms, 2),
        fmt(r.proxyCpuPct),
        fmt(r.cpuUsPerOp, 1),
        fmt(r.kernelUsPerOp, 1),
        r.errors > 0 ? `**${r.errors}**` : '0'
      ])
    }
  }
  const unit = s.rows[0]?.unit ?? ''
  return table(['Case', 'Target', unit, 'gateway ÷ this', 'p50 ms', 'p99 ms', 'CPU % (proxy)', `CPU µs/${perLabel}`, 'of it in the kernel', 'errors'], out)
}

function streamsTable (s: ScenarioResult): string {
  const out = s.rows.map((r: Row) => [r.case, r.label, `${(r.value / 1048576).toFixed(1)}`, fmt(r.proxyCpuPct), fmt(r.cpuUsPerOp, 2), fmt(r.loadCpuPct), r.errors > 0 ? `**${r.errors}**` : '0'])
  return table(['Case', 'Target', 'MiB/s', 'CPU % (gateway / echo server)', 'CPU µs/KiB', 'CPU % (load client)', 'errors'], out)
}

/** Instructions per request, and the main thread's work outside GC ÷ the gateway's (above 1: more work than the gateway). */
function instructionsTable (s: ScenarioResult): string {
  const out: string[][] = []
  const k = (n: number | undefined): string => n === undefined ? '–' : `${Math.round(n / 1000)}k`
  for (const kase of [...new Set(s.rows.map(r => r.case))]) {
    const rows = s.rows.filter(r => r.case === kase)
    const gw = rows.find(r => r.target === 'gateway')
    for (const r of rows) {
      out.push([
        kase,
        r.label,
        fmt(r.value),
        gw !== undefined ? `${(r.value / gw.value).toFixed(2)}×` : '–',
        fmt(r.gcPerOp),
        fmt(r.allThreadsPerOp),
        (r.windowsPerOp ?? []).map(k).join(' '),
        r.errors > 0 ? `**${r.errors}**` : '0'
      ])
    }
  }
  return table(['Case', 'Target', 'main thread outside GC (median window)', 'this ÷ gateway', 'main thread in GC (mean)', 'all threads (mean)', 'main thread, window by window', 'errors'], out)
}

/** `1–4,872: 9.61 KiB (heap 6.93)` per step (the sessions each step authenticated, counted on from the steps before). */
export function idleSteps (steps: IdleStep[]): string {
  return steps.map(s => s.sessions === 0
    ? `none authenticated after ${fmt(s.total)}`
    : `${fmt(s.total - s.sessions + 1)}–${fmt(s.total)}: ${(s.rssPerSession / 1024).toFixed(2)} KiB (heap ${(s.heapPerSession / 1024).toFixed(2)})`
  ).join('; ')
}

function idleTable (s: ScenarioResult): string {
  const i = s.idle
  if (i === undefined) return '_not measured_'
  const rows = [
    ['Sessions authenticated', `${fmt(i.authenticated)} of ${fmt(i.requested)} asked for (${fmt(i.upgraded)} upgraded, ${fmt(i.failed)} failed)`],
    ['Gateway RSS per authenticated session', `${(i.rssPerSession / 1024).toFixed(2)} KiB`],
    ['Gateway heap per authenticated session', `${(i.heapPerSession / 1024).toFixed(2)} KiB`],
    ['Gateway RSS per connection before its hello', `${(i.rssPerConnectionBeforeHello / 1024).toFixed(2)} KiB`],
    ['Gateway RSS: baseline → upgraded → authenticated', `${mib(i.baseline.vmRss)} → ${mib(i.connected.vmRss)} → ${mib(i.authed.vmRss)}`],
    ['Gateway heap used: baseline → authenticated', `${mib(i.baseline.heapUsed)} → ${mib(i.authed.heapUsed)}`],
    ...(i.steps === undefined ? [] : [['Gateway RSS (heap) per session, step by step: the sessions of each step, what they added', idleSteps(i.steps)]]),
    ['WebSocket upgrades per second (TCP connect + upgrade, 256 at a time)', `${fmt(i.upgradesPerSec)} (gateway CPU ${fmt(i.cpuUsPerUpgrade)} µs per upgrade)`],
    ['Hello handshakes per second (hello → auth_result, embedded device list, 1000 at a time)', `${fmt(i.hellosPerSec)} (gateway CPU ${fmt(i.cpuUsPerHello)} µs per hello)`],
    ['Layout', `${i.loadProcesses} load process(es), ${i.sourceAddresses} source address(es) 127.0.0.2+; gateway open-files limit ${fmt(i.gatewayOpenFiles)}`]
  ]
  return table(['What', 'Measured'], rows)
}

/** Hot spots found with `--profile` (see the profile tables below), per kind of target. */
const ANALYSIS: Record<string, string> = {
  'http-nginx': 'Per request the gateway makes the same four system calls as nginx (two reads, one `writev` to the client, one write upstream: counted with `strace -c`); the rest is JavaScript: Node\'s HTTP parser and header writer, Fastify\'s routing and hooks, undici. The **node** row, a plain Node `http` server + undici Pool with no features at all, is the floor for any Node proxy; the gateway adds Fastify\'s request lifecycle, the rate limit, route metrics, the request id, the path check and the forwarded headers on top of it, and the profile spreads that over many small items (none above 2% of CPU) rather than one hot spot. Profiled side by side (10 s of load each, JavaScript time per request with system calls left out): the plain Node floor 35-50 µs, the same plain Node server doing the gateway\'s per-request work (request id, rate limit, path check, forwarded headers, route histogram) 50-60 µs, the gateway 57-67 µs. So Fastify\'s lifecycle is about 7 µs of a request and the features 10-15 µs; serving proxied requests outside Fastify would win back well under 10%. The same profiles show why the gateway\'s CPU per request moves more with the machine than the floor\'s (1.2× the floor in a calm minute, up to 1.5× in a full run, on the slower machine; 1.03-1.09× in the 8-round run on the faster one at 5e4bbe5): with the same system calls per request, the gateway spent 26-27 µs inside `writev`/`write` against the floor\'s 15-16 µs. A slower proxy leaves wrk and the upstream asleep more often between its writes, and a write that wakes a process on the other vCPU pays for the wake-up (an inter-processor interrupt, dear in a VM), so each µs of JavaScript saved is worth about two. Holding the responses of one event-loop turn corked until `setImmediate`, and dispatching the upstream requests there too, so that the writes leave back to back, was tried: 1-2%, not kept. The kernel column splits the CPU per request: in the runs at 4e1f627, 768c0fe and f983533 (Node 24) the gateway\'s system time per request was 1.25-1.7× nginx\'s (the same system calls, and the wake-ups above) and its user-space time 8-11× nginx\'s, of which the floor spends 50-80% too: the gap to nginx is user-space work, most of it any Node proxy\'s. Counted with callgrind at 74002ae (Node 20, the median of 3 windows of 1,000 requests), the gateway did 175 thousand instructions per 100 B request against the floor\'s 139 thousand; with the rate limit and the route metrics turned off it did 163 thousand. So those two features are 7% of its work, most of it the three `x-ratelimit-*` headers on every response: Node (writing the head) and undici (building the upstream request) check each header\'s name and value with regular expressions, and those two expressions alone counted about 6,000 instructions per request, request and response headers together. Those headers are what @fastify/rate-limit sends by default, so they stay. In the calmest hour measured so far (two Node 24 runs at 74002ae, straight to the upstream 23,800 and 33,700 req/s) the gateway reached 0.47× and 0.51× nginx at 100 B and 0.44× and 0.67× at 10 KB.',
  'http-bare': 'The gateway keeps @fastify/http-proxy\'s routes and options but not its per-request work: undici dispatch straight to the response (lib/http-forward.ts) in place of reply-from\'s streams, no per-request URL re-checks (its own path check covers traversal), a synchronous rate-limit hook in place of @fastify/rate-limit\'s async one, and route durations in a histogram whose label sets are looked up once (lib/route-histogram.ts) in place of fastify-metrics\' timers. What is left is the features the bare app does not run (rate limit, metrics, request id, path check, forwarded headers). At 10 KB the bare app itself costs only 1.4-1.7× the **node** floor, by run (more of each request is moving bytes, which every Node proxy pays alike), so 1.3× bare there asks the gateway, with all its features on, for 76-93% of the floor\'s speed. In instructions (callgrind, Node 24) the bare app did 1.5× the gateway\'s work per request at dc71420 (301 against 200 thousand at 100 B, 315 against 207 at 10 KB) and the gateway 1.23× the floor\'s (163 and 167); at a3b05a2 (the same bare app: its counts have moved by up to 30% between runs) 2.0× (394 against 198 thousand, 396 against 200) and 1.23× and 1.19× (161 and 168). Until dc71420 the bench started its servers with a Node IPC channel, and on Node 24 that made every `process.nextTick` in the gateway take V8\'s runtime path, a fifth of its instructions per request (261 and 283 thousand); the Node 24 runs before it understated the gateway (docs/performance.md).',
  'http-auth': 'Verified gateway access tokens are remembered by their exact text until they expire (lib/auth/gateway-tokens.ts), so a repeat request costs a map lookup and a revocation check instead of a decode and an HMAC; before that the token route cost about 45% more CPU per request. The remembered token gives the same frozen principal object on every request, so the authenticator links it to its login once (a new object per request was a new WeakMap entry and garbage per request; API keys likewise). Profiled side by side, what is left is about 5-7 µs per request: a 250-byte header to parse and look up, and three identity headers more to the upstream. Counted with callgrind (the instructions section, since a3b05a2) that is 6-8% more work at 100 B. Its cost in time moves more than that between runs: from the same CPU per request as auth: none (2a78042) to 23% more in the 8-round run on a faster machine (5e4bbe5, 18.7% fewer req/s), where a 3-round run minutes before had the route 3.9% cheaper in req/s and an 8-round run of only the two routes an hour later 2.3% cheaper at 100 B and 10.6% dearer at 10 KB; not explained (docs/performance.md). In 16 rounds of only nginx, the bare app and the two routes at 146cfe9 (the same code) it was 0.7% cheaper [-9% to 20%] at 100 B and 3.7% dearer [-5% to 11%] at 10 KB, with 8% and 2% more CPU per request by the medians. Rounds on this shared machine still differ by 10-40% (see the ranges).',
  'ws-nginx': 'Proxied WebSockets are relayed as bytes after both handshakes (lib/ws-relay.ts): only frame headers are read, payloads are never unmasked or copied. Per message the gateway makes the same system calls as nginx (a read and a write per leg) and costs from 15% less to 35% more CPU per message than the **node** row, by run and size (the CPU µs/msg column), a raw TCP relay with no parsing at all: that row is the floor for a Node process, and it does not reach nginx either. The kernel column shows where the difference is: the system time per message of the gateway, the floor and nginx are of a size (the gateway\'s 0.6-1.5× nginx\'s, by run and size), while nginx spends 2-10 µs per message in user space and the Node relays 14-41 µs (four runs, at 4e1f627, 768c0fe, f9e9966 with 10f0b3f\'s changes, and f983533 on Node 24). That is Node\'s per-event cost (a call into JavaScript per read, stream machinery, a `Buffer` per read, a write request per write); the gateway\'s header walk and counters add about 4,500-4,800 instructions per echo to the floor\'s 29,000 at 64 B and 38,000 at 4 KB (1.17× and 1.12× at 7e4016f; a later floor-only run counted the floor at 37,000 and 46,000, and the run at a3b05a2 counted 1.21× and 1.17×, so the ratio is an estimate), where the bare app\'s `ws` relay runs 61,000 and 391,000 (it unmasked and masked every payload in JavaScript then; bufferutil does it in C since 7143562). Reading the upstream socket with `onread` into a reused buffer (no `Buffer` per read, no stream push) was tried on that relay: in 9 alternating pairs of runs its CPU per message was no different beyond the noise (medians 48 against 44 µs at 64 B, 56 against 56 at 4 KB), so it was not carried into the gateway. The **native** row takes every bit of JavaScript out of that floor: the same process and event loop, with the upgraded sockets relayed by C code (bench/native/relay.c) polling them on Node\'s own libuv loop. Its user time per echo is 1-6 µs, nginx\'s level, and it is 1.08-1.28× the JavaScript floor\'s messages/s (three runs, both sizes). Against nginx it reached 1.04× [0.79-1.23] at 64 B and 1.38× [1.26-1.55] at 4 KB in the Node 24 run at f983533, 0.89× [0.75-1.08] and 1.14× [0.83-1.53] in the Node 20 run at f9e9966 with the changes committed as 10f0b3f, and four more 3-round Node 20 runs at 64 B gave 0.97×, 0.88×, 0.99× and 1.00× (not kept in latest.json; two of them with 8 KiB buffers per direction instead of 64 KiB, a variant not committed: no difference). What is left at 64 B is the kernel part, 0.95-1.5× nginx\'s per echo by round (median 1.06 and 1.1 in the two runs), with the same system calls (`strace -c`: a `read` and a `write` per leg where nginx has `recvfrom` and `sendto`, about 100 events per `epoll_wait` in both); at 4 KB the C relay\'s kernel time is 0.6× nginx\'s. In 16 rounds at 146cfe9 (the faster machine) it ran level with nginx at 64 B (40,823 against 41,139 messages/s by the medians) and at 1.33× it at 4 KB, and the gateway at 0.93× of it at both sizes. So even with no JavaScript per event, this relay inside a Node process sits at about nginx\'s level at 64 B on this machine (0.88-1.04× by run) and above it at 4 KB, and the gateway\'s relay runs at 0.67-1.00× of it, by run and size (0.73× at 64 B and 0.67× at 4 KB in a slower hour at f121ee9). A gateway relay that walks frame headers in C and hands control frames, pauses and closes to lib/ws-relay.ts would win that difference, which at 64 B would bring it to about nginx\'s level, not clearly past it; it is not built: native code in the gateway\'s install, and a second implementation of the relay\'s state machine to keep in step. Two Node 24 runs at 74002ae in the calmest hour measured so far (straight to the echo upstream 57,000-59,000 messages/s at 64 B, against 38,000 in the run at f983533) put this in proportion. At 64 B the C relay reached 1.02× [0.98-1.09] and 1.01× [1.00-1.05] of nginx, the JavaScript floor 0.92× and 0.93×, and the gateway ran level with that floor (1.01× and 1.02× of it), at 1.04× [0.56-1.11] and 0.93× [0.91-1.01] of nginx; at 4 KB it reached 1.01× and 1.07×. In such an hour the header walk costs nothing that shows in messages/s, and what separates the gateway from nginx at 64 B (0-7%) is the JavaScript per event that every Node relay pays. In a slow hour the gap widens to 0.72× (f983533): the proxy that needs a whole core loses the most when the two cores are shared. On Node 24 the Node IPC channel the bench used until dc71420 cost the gateway\'s relay a quarter more instructions per echo (42 against 32 thousand at 64 B, 45 against 34 at 4 KB; the floor 26 and 28), through the same `process.nextTick` runtime path as on the HTTP side: the Node 24 WebSocket runs before it understated the gateway.',
  'ws-bare': 'The bare app relays messages with `ws` on both legs (parse, unmask, re-frame, mask again; the masking in C since bufferutil became a dependency at 7143562, in JavaScript before); the gateway relays bytes and reads only frame headers.',
  'streams-binary': 'With binary `stream_data` (docs/protocol.md, since 7a31019) the gateway does per payload byte what the raw echo does: unmask once, write back. Until 75582fc it also copied the stream\'s header and the payload into one new buffer per message for `ws`: 14% of its busy time in the profile at fee84ba, and a 16 KiB allocation per message. Since then it writes a small buffer (the WebSocket frame header and the stream\'s header) and then the upstream\'s chunk as it came onto the client\'s socket, in one `writev` (lib/session/session.ts, sendBinaryStreamData). That cut its CPU per KiB with 16 streams from 3.4-4.4 µs (099f2d4) to 2.8-3.5 (75582fc) by round, against the raw echo\'s 1.9-2.9 and 1.9-2.8, and the profile at 75582fc had `writev` at 36%, `ws`\'s JavaScript unmask at 33% and garbage collection at 9%. Since 7143562 `ws` unmasks in C with bufferutil, in every process of the run alike: the gateway 1.7-2.6 µs per KiB, the raw echo 1.2-1.5 in the run at 7143562; 2.1-2.7 and 1.1-1.7 at ffef0a7. The profile below is of binary frames at 7143562 (`--targets gateway-binary`): `writev` 47% of the gateway\'s busy time, garbage collection 17%, the unmask 2%.',
  streams: 'With JSON frames, per payload byte the gateway unmasks 4/3 as many bytes (base64 in JSON text frames), decodes and re-encodes base64 and parses JSON, where the raw echo unmasks once and writes back; binary `stream_data` (docs/protocol.md, since 7a31019) skips all three and is the protocol\'s form for bulk bytes. On Node 24 the gateway should run with `--initial-old-space-size=64` (npm start, since 099f2d4): without it, V8 was seen to fall after some seconds of this load into a full mark-compact every 60-150 ms, and the JSON rows ran at about twice the CPU per KiB in those rounds (why V8 does this was not established). With it, at 099f2d4, the gateway spent 3.5-4.8 µs per KiB on JSON frames (2.1-3.6 at 7143562 and 2.1-3.7 at ffef0a7, with bufferutil), and with 16 streams the load client (which masks 4/3 as many bytes for JSON frames, in JavaScript) ran at 81-87% of a core against the gateway\'s 74-85%: neither process was saturated, and the client and the two shared cores likely set the pace there (see the load client column). Profile of JSON frames at e2f08a1 (Node 24): `writev` 29% of the gateway\'s busy time, `ws`\'s unmask 25%, garbage collection 10%, base64 6%. With `bufferutil` (unmasking in C) installed for both sides a 3-round trial at e2f08a1 gave 0.47× [0.27-0.56]: both sides gained about alike; it has been a dependency since 7143562 (0.52× [0.49-0.60] in the first run with it). The target was met in every run until the bench dropped its IPC channel (0.68× at af925d7); in the runs since, the raw echo has run at 279-503 MiB/s (median by run) against 232 then, and at 624 on the faster machine of 5e4bbe5. Until 1313033 the JSON load client handed `ws` its frames as strings, which `ws` encoded to UTF-8 (21 KiB) on every send before masking, work the raw client does not do; it now sends the same frames as prepared bytes. In the run before that change (df8c207) the client ran at 93% of a core with 16 JSON streams and the gateway at 68%, 0.44× [0.40-0.58]; in the run after it (1313033) the client at 75% and the gateway at 85%, 0.49× [0.47-0.70], at 234 MiB/s both times. Profile of JSON frames at 1313033 (with bufferutil, the echo upstream in the gateway\'s process): `writev` 43% of the gateway\'s busy time (it writes 4/3 of the payload bytes to the client), garbage collection 18%, base64 encoding and decoding 10%, the unmask 1%: most of what is left is the kernel\'s work and the base64 strings\' garbage, which JSON frames cannot avoid. In 16 rounds at 68f0a64 (the gateway\'s code as at 12f766e) JSON frames gave 0.47× [0.45-0.49], a miss beyond the noise, with the gateway at 92% of a core; its profile then: `writev` 35%, the base64 decode and the copy of the text before it 5% each, the encode and its string 3% each, the copy of that string into the frame 5.5%, garbage collection 6% (docs/performance.md). A scratch build that corked the client\'s socket over each event-loop turn, so that a turn\'s frames (up to 128 KiB) left in one `writev`, showed no gain through the noise in 2 rounds and did worse with one stream (2026-11-24); likely the kernel\'s cost follows the bytes rather than the calls. The two copies through a string are about a tenth of the profile; without them the ratio would come to about 0.52×, just past the line, and removing them needs a base64 from bytes to bytes, which Node 24 does not have.',
  idle: 'Each session holds a `ws` WebSocket with its Receiver and Sender, the Node socket, a Session (stream maps allocated on first use, deadlines on one shared timer), its registry entry and refresh-token record. The upgrade\'s request and response, which @fastify/websocket keeps for the socket\'s life, are let go once the socket is taken over (lib/ws-upgrade.ts; about 2.6 KB of heap per session until 2a78042).'
}

export function loadProfiles (resultsDir: string): SavedProfile[] {
  const out: SavedProfile[] = []
  for (const s of ['http', 'ws', 'streams']) {
    const file = join(resultsDir, `profile-${s}.json`)
    if (existsSync(file)) {
      try { out.push(JSON.parse(readFileSync(file, 'utf8')) as SavedProfile) } catch {}
    }
  }
  return out
}

function profileBlock (p: SavedProfile, n = 10): string {
  const row = (kind: string, e: SavedProfile['top'][number]): string => `| ${kind} | ${e.selfPct.toFixed(1)}% | \`${e.functionName}\` | ${e.location !== '' ? `\`${e.location}\`` : ''} |`
  const mods = p.modules.slice(0, 8).map(m => `${m.module} ${m.selfPct.toFixed(0)}%`).join(', ')
  return [
    `**${p.scenario}**: gateway CPU profile of \`npm run bench -- ${p.scenario} --profile\` (${p.ranAt.slice(0, 16).replace('T', ' ')}, commit ${p.commit}; ${(p.busyMs / 1000).toFixed(1)} s busy, GC ${(p.gcMs / p.busyMs * 100).toFixed(0)}%). Self time by module: ${mods}.`,
    '',
    '| | % of busy CPU | function | location |',
    '|---|---:|---|---|',
    ...p.top.slice(0, n).map(e => row('self', e)),
    ...(p.inclusive ?? []).slice(0, 8).map(e => row('total (gateway code, plugins)', e))
  ].join('\n')
}

export function renderMarkdown (results: Results, profiles: SavedProfile[]): string {
  const m = results.machine
  const targets = evaluateTargets(results)
  const o = results.options
  const loadgen = results.scenarios.http?.rows[0]?.tool ?? (m.wrk !== undefined ? 'wrk' : 'autocannon')
  const lines: string[] = []
  lines.push('# Benchmarks', '')
  lines.push('_Generated by `npm run bench` (bench/run.ts); do not edit by hand. Raw numbers: [bench/results/latest.json](bench/results/latest.json)._', '')
  lines.push('![benchmark chart](bench/results/chart.svg)', '')
  lines.push(table(['What', 'Measured'], [
    ['Ran at (the last scenario run; each section names its own)', results.ranAt],
    ['Commit (of the last scenario run; each section names its own)', `\`${m.commit}\`${m.dirty ? ' (the working tree had uncommitted changes)' : ''}`],
    ['Node (of the last scenario run; each section names its own)', m.node],
    ['Machine', `${m.cpuModel}, ${m.cores} cores, ${(m.memoryBytes / 1073741824).toFixed(1)} GiB memory, ${m.os}`],
    ['Load average at the last scenario run\'s start', `${m.loadavgAtStart.join(' / ')} (1/5/15 min; other work on the box adds noise, see the loadavg column in latest.json)`],
    ['HTTP load generator', loadgen === 'wrk' ? `wrk ${m.wrk ?? ''} (\`-t1 -c${o.connections}\`)` : `autocannon (\`-c ${o.connections}\`)`],
    ['nginx', m.nginx ?? 'not installed: `apt-get install -y nginx wrk`'],
    // Scenarios run at different times keep their own options; one run-wide line would describe only the last (idle has no rounds).
    ['Durations', 'each timed section names its rounds, seconds per measurement and warm-up; rounds are interleaved (each round starts one target later): values are medians; ratios are the median of the ratios of each round (shown beside each target: the range across rounds, and the distribution-free confidence interval of that median, from the rounds\' order statistics)']
  ]), '')
  lines.push('Ratios measured side by side in the same run are the headline; absolute numbers are context for this machine.', '')

  lines.push('## Targets', '')
  lines.push(table(['Target', 'Required', 'Measured', 'Result', 'Numbers'], targets.map(t => [t.title, t.requirement, t.display, result(t), t.detail]), 5), '')
  if (targets.some(t => t.withinNoise === true)) {
    lines.push('_Within noise_: the requirement lies inside the confidence interval of the median ratio, so this run\'s rounds cannot tell pass from fail (the verdict is the median\'s side of the requirement). More rounds narrow the interval.', '')
  }

  lines.push('## Process layout', '')
  lines.push([
    'Every part runs in its own process on loopback (127.0.0.0/8), so the two cores are shared by the scheduler, not by one event loop:',
    '',
    '- **upstream**: a plain Node `http` server (`GET /<n>` answers n bytes, keep-alive) with a `ws` echo server on the same port (bench/servers/upstream.ts).',
    '- **gateway**: the real app, `Fastify({ ...options, logger: false }) + register(fp(app), { config: loadConfig({ env: {}, overrides }) })` with the server options of server.ts (bench/servers/gateway.ts), started with `--max-semi-space-size=16 --initial-old-space-size=64` like `npm start`. Default plugins on: request id, metrics enabled, top-level rate limit of 10⁹/min (never triggers). Routes: `/api` (auth: none), `/secure` (auth: required), `/wsecho` (websocket: true); embedded device `bench`.',
    '- **bare**: Fastify with only @fastify/http-proxy (defaults), `/api` and `/wsecho` (websocket: true) (bench/servers/bare-proxy.ts).',
    '- **nginx**: Debian nginx, `worker_processes 1`, `proxy_pass` with upstream `keepalive 128`, forwarded headers and a request id like the gateway, started with `nginx -p <tmp prefix> -c <conf>` (own pid, logs, temp dirs), never the system nginx (bench/lib/nginx.ts).',
    '- **load**: wrk (one thread) for HTTP; a Node process with `ws` clients for WebSocket, streams and idle sessions (bench/load/).',
    '- **node**: the floor for a Node process (bench/servers/node-proxy.ts): a plain `http` server forwarding through an undici Pool with no hooks or checks, and a raw TCP relay after the WebSocket upgrade (no frame parsing). Not a target; it shows how much of the gap to nginx is Node itself.',
    '- **native**: the **node** process with its upgraded sockets relayed by C code on Node\'s own event loop (bench/native/relay.c, an N-API addon: `read` and `write` on both sockets, one buffer per direction, no frame parsing, no JavaScript per read or write). Not a target either; the gap between **node** and **native** is the JavaScript per event.',
    '- **direct**: the load generator straight to the upstream (no proxy): the ceiling of the machine.',
    '',
    'CPU % is the proxy process (nginx: master + worker) during the measurement, in % of one core; CPU µs per request/message is that CPU time divided by the requests or messages served, and _of it in the kernel_ is the system-time part of it (/proc/<pid>/stat: system calls, the loopback TCP stack they run, waking the process at the other end); the rest is its own user-space work.'
  ].join('\n'), '')

  const sections: Array<[ScenarioName, string]> = [['http', 'HTTP proxy'], ['ws', 'WebSocket proxy echo'], ['streams', '/ws streams'], ['idle', 'Idle /ws sessions'], ['instructions', 'Instructions per request and per WebSocket echo (callgrind)']]
  for (const [name, title] of sections) {
    const s = results.scenarios[name]
    lines.push(`## ${title}`, '')
    if (s === undefined) {
      lines.push('_Not run (`npm run bench -- ' + name + '`)._', '')
      continue
    }
    // Each scenario keeps its own options: the run's Durations line describes only the last one run.
    const timed = name === 'http' || name === 'ws' || name === 'streams'
    const how = timed && s.options.durationS !== undefined ? `, ${s.options.rounds ?? 1} round(s) of ${s.options.durationS} s per measurement after ${s.options.warmupS ?? 0} s of warm-up` : ''
    lines.push(`_Ran ${s.ranAt.slice(0, 19).replace('T', ' ')} UTC at commit ${s.commit}${s.node !== undefined ? ` on Node ${s.node}` : ''}${how}, ${Math.round(s.seconds)} s; \`ws\` masking in every process: ${s.wsMasking ?? 'not recorded (JavaScript: before bufferutil became a dependency at 7143562)'}._`, '')
    if (!s.available) {
      lines.push('**Not available.**', '')
    } else if (name === 'http') {
      lines.push(`${o.connections} connections, keep-alive, \`GET\` of 100 B and 10 KB bodies.`, '', throughputTable(s, 'gateway', 'req'), '')
    } else if (name === 'ws') {
      lines.push(`${s.options.wsConnections ?? o.wsConnections} connections; each sends a binary message, waits for its echo, sends again (closed loop).`, '', throughputTable(s, 'gateway', 'msg'), '')
    } else if (name === 'instructions') {
      lines.push('Each proxy in turn under `valgrind --tool=callgrind`, counting the instructions it runs per proxied `GET` (the same 100 B and 10 KB bodies as the HTTP scenario) and per WebSocket echo through its echo route (64 B and 4 KB, one message each way), in 5 windows of 1,000 requests or echoes per size after 8,000 of warm-up; then the gateway\'s `auth: required` route with a gateway token, counted last in the same process (its functions have then seen two routes, and its windows may still be recompiling). They count work, not time (a cache miss or a system call is one instruction here), and the machine\'s load does not move them; V8 does. Windows of one run differ by up to a quarter, now and then by more (up to 1.8× in a window where V8 was still recompiling), and the per-function counts show why: in the expensive windows hot functions run as baseline code after a deoptimization, until they are optimized again; garbage collection is only 2-5% of the main thread. The headline is therefore the median window of the main thread\'s work outside the collectors; the collectors and the other threads (V8\'s GC helpers and compilers) are means over the windows. Whole runs of the same code have also differed by up to 30% (the two Fastify apps, and the plain-Node floor at 10 KB once), so a change of a few percent needs several runs to show.', '', instructionsTable(s), '')
    } else if (name === 'streams') {
      lines.push(streamsTable(s), '')
    } else {
      lines.push(idleTable(s), '')
    }
    for (const n of s.notes) lines.push(`- ${n}`)
    if (s.notes.length > 0) lines.push('')
  }

  const failed = targets.filter(t => t.pass === false)
  lines.push('## What limits it', '')
  if (failed.length === 0) lines.push('Every measured target passes.', '')
  // One paragraph per kind of target (the profile findings), one line per failed case (this run's CPU numbers).
  const groups = new Map<string, TargetResult[]>()
  for (const t of failed) {
    const key = Object.keys(ANALYSIS).find(k => t.id.startsWith(k)) ?? t.id
    groups.set(key, [...(groups.get(key) ?? []), t])
  }
  for (const [key, group] of groups) {
    lines.push(`- ${ANALYSIS[key] ?? ''}`)
    for (const t of group) lines.push(`  - ${t.title} (${t.display}, required ${t.requirement}): ${t.limits ?? ''}`)
  }
  if (failed.length > 0) lines.push('')
  for (const p of profiles) lines.push(profileBlock(p), '')

  lines.push('## How to run', '')
  lines.push([
    '```sh',
    'apt-get install -y nginx wrk      # optional: without them the nginx comparisons are skipped and autocannon is used',
    'npm run bench                     # http, ws, streams, idle; writes BENCHMARKS.md, bench/results/latest.json and chart.svg',
    'npm run bench -- http             # one scenario (http, ws, streams, idle, instructions); merged into latest.json',
    'npm run bench -- ws --duration 10 --rounds 3',
    'npm run bench -- idle --sessions 20000',
    'npm run bench -- http --profile   # gateway under --cpu-prof; prints the top 25 self-time functions',
    'npm run bench -- instructions     # instructions per request and per WebSocket echo under callgrind (apt-get install -y valgrind; only when named), about 20 minutes',
    'npm run bench -- --help',
    'npx -p node@24 -c \'npm run bench\'  # the same on Node 24, fetched from the npm registry (the system\'s Node is left alone)',
    '```'
  ].join('\n'), '')
  return lines.join('\n')
}
