/**
 * `npm run bench [-- <scenario>...] [options]`: starts everything it needs on loopback, runs
 * the scenarios, and writes BENCHMARKS.md, bench/results/latest.json and bench/results/chart.svg.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { chartSvg } from './lib/chart.js'
import { autocannonPath, wrkVersion } from './lib/http-load.js'
import { NGINX_INSTALL_HINT, nginxVersion } from './lib/nginx.js'
import { formatSummary, summarize } from './lib/profile.js'
import { loadProfiles, renderMarkdown, type SavedProfile } from './lib/report.js'
import { machineInfo } from './lib/system.js'
import { evaluateTargets } from './lib/targets.js'
import { DEFAULT_SCENARIOS, SCENARIOS, type BenchOptions, type Context, type Results, type ScenarioName, type ScenarioResult } from './lib/types.js'
import { medianRows } from './scenarios/common.js'
import { runHttp } from './scenarios/http.js'
import { runIdle } from './scenarios/idle.js'
import { runInstructions } from './scenarios/instructions.js'
import { runStreams } from './scenarios/streams.js'
import { runWs } from './scenarios/ws.js'

const USAGE = `usage: npm run bench -- [scenario...] [options]

scenarios: ${SCENARIOS.join(', ')} (default: ${DEFAULT_SCENARIOS.join(', ')})

options:
  --duration <s>       seconds per measurement (default 5)
  --warmup <s>         warm-up seconds before each measurement (default 1)
  --rounds <n>         repeat every measurement n times, interleaved; ratios are the median of
                       the per-round ratios, values the median (default 3)
  --connections <n>    HTTP connections (default 50)
  --ws-connections <n> WebSocket echo connections (default 100)
  --sessions <n>       idle /ws sessions to open (default: up to 50000, as many as the open-files limit allows)
  --chunk <bytes>      /ws stream_data payload size (default 16384)
  --window <n>         chunks in flight per stream (default 4)
  --loadgen <tool>     wrk or autocannon (default: wrk when installed)
  --targets <list>     only these targets, comma-separated: direct, nginx, bare, node, gateway,
                       gateway-token, gateway-apikey (http), native (ws), raw, gateway-binary (streams)
  --no-nginx           skip the nginx comparisons
  --profile            run the gateway under --cpu-prof (bench/results/profiles), measure only the
                       gateway targets (unless --targets), print the top 25 self-time functions;
                       saves bench/results/profile-<scenario>.json, does not touch BENCHMARKS.md
  --report             only re-render BENCHMARKS.md and chart.svg from bench/results/latest.json
  --help
`

const root = process.cwd()
const resultsDir = join(root, 'bench', 'results')
const profileDir = join(resultsDir, 'profiles')

function positive (name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} needs a positive number, got ${JSON.stringify(value)}`)
  return n
}

function parseOptions (): BenchOptions {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      'ws-connections': { type: 'string' },
      sessions: { type: 'string' },
      chunk: { type: 'string' },
      window: { type: 'string' },
      loadgen: { type: 'string' },
      targets: { type: 'string' },
      'no-nginx': { type: 'boolean' },
      profile: { type: 'boolean' },
      report: { type: 'boolean' },
      help: { type: 'boolean' }
    }
  })
  if (values.help === true) {
    process.stdout.write(USAGE)
    process.exit(0)
  }
  if (values.report === true) {
    const results = JSON.parse(readFileSync(join(resultsDir, 'latest.json'), 'utf8')) as Results
    writeReport(results)
    process.exit(0)
  }
  const unknown = positionals.filter(p => !(SCENARIOS as string[]).includes(p))
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.join(', ')}`)
  const loadgen = values.loadgen ?? (wrkVersion() !== undefined ? 'wrk' : 'autocannon')
  if (loadgen !== 'wrk' && loadgen !== 'autocannon') throw new Error('--loadgen is wrk or autocannon')
  return {
    scenarios: positionals.length > 0 ? [...new Set(positionals)] as ScenarioName[] : [...DEFAULT_SCENARIOS],
    durationS: positive('duration', values.duration, 5),
    warmupS: values.warmup === '0' ? 0 : positive('warmup', values.warmup, 1),
    rounds: Math.round(positive('rounds', values.rounds, 3)),
    connections: Math.round(positive('connections', values.connections, 50)),
    wsConnections: Math.round(positive('ws-connections', values['ws-connections'], 100)),
    sessions: values.sessions !== undefined ? Math.round(positive('sessions', values.sessions, 1)) : undefined,
    chunk: Math.round(positive('chunk', values.chunk, 16_384)),
    window: Math.round(positive('window', values.window, 4)),
    loadgen,
    nginx: values['no-nginx'] !== true,
    profile: values.profile === true,
    targets: values.targets?.split(',').map(t => t.trim()).filter(t => t !== '')
  }
}

function writeReport (results: Results): void {
  writeFileSync(join(resultsDir, 'chart.svg'), chartSvg(results))
  writeFileSync(join(root, 'BENCHMARKS.md'), renderMarkdown(results, loadProfiles(resultsDir)))
}

const RUNNERS: Record<ScenarioName, (ctx: Context) => Promise<ScenarioResult>> = { http: runHttp, ws: runWs, streams: runStreams, idle: runIdle, instructions: runInstructions }

/** The newest .cpuprofile of a scenario's gateway (the name is fixed, but look around in case). */
function profileFile (s: ScenarioResult): string | undefined {
  if (s.profile !== undefined && existsSync(s.profile)) return s.profile
  if (!existsSync(profileDir)) return undefined
  const files = readdirSync(profileDir).filter(f => f.startsWith(`${s.name}-gateway-`) && f.endsWith('.cpuprofile'))
  files.sort((a, b) => statSync(join(profileDir, b)).mtimeMs - statSync(join(profileDir, a)).mtimeMs)
  return files.length > 0 ? join(profileDir, files[0]) : undefined
}

async function main (): Promise<void> {
  let opts: BenchOptions
  try {
    opts = parseOptions()
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`)
    process.exit(1)
  }
  const nginx = nginxVersion()
  const wrk = wrkVersion()
  const machine = machineInfo({ nginx, wrk })
  const log = (line: string): void => { process.stdout.write(`${line}\n`) }
  if (nginx === undefined || wrk === undefined) {
    log(`note: ${[nginx === undefined ? 'nginx' : '', wrk === undefined ? 'wrk' : ''].filter(s => s !== '').join(' and ')} not installed; install with: ${NGINX_INSTALL_HINT}`)
    if (nginx === undefined) log('      the nginx comparisons are skipped')
    if (wrk === undefined) log(`      HTTP load comes from autocannon instead of wrk${autocannonPath() === undefined ? ' (not installed either: npm install)' : ''}`)
  }
  if (opts.loadgen === 'wrk' && wrk === undefined) throw new Error(`--loadgen wrk: wrk is not installed (${NGINX_INSTALL_HINT})`)
  mkdirSync(profileDir, { recursive: true })
  const ctx: Context = { opts, machine, nginxAvailable: nginx !== undefined, loadgen: opts.loadgen, profileDir, resultsDir, log }

  log(`bench: ${opts.scenarios.join(', ')}; ${opts.durationS} s per measurement, ${opts.warmupS} s warm-up, ${opts.rounds} round(s)${opts.profile ? ', profiling the gateway' : ''}`)
  log(`machine: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, commit ${machine.commit}${machine.dirty ? ' (dirty)' : ''}, load ${machine.loadavgAtStart.join(' ')}`)

  const latestFile = join(resultsDir, 'latest.json')
  let results: Results = { machine, ranAt: new Date().toISOString(), options: opts, scenarios: {} }
  // A single-scenario run replaces that scenario in the last results and keeps the others.
  if (!opts.profile && opts.scenarios.length < SCENARIOS.length && existsSync(latestFile)) {
    try {
      const previous = JSON.parse(readFileSync(latestFile, 'utf8')) as Results
      results = { ...results, scenarios: previous.scenarios }
    } catch {}
  }

  let failures = 0
  for (const name of opts.scenarios) {
    log(`\n== ${name}`)
    const started = Date.now()
    let s: ScenarioResult
    try {
      s = await RUNNERS[name](ctx)
    } catch (err) {
      failures++
      log(`${name} failed: ${(err as Error).stack ?? String(err)}`)
      continue
    }
    s.seconds = (Date.now() - started) / 1000
    if (opts.rounds > 1) s.roundRows = s.rows
    s.rows = medianRows(s.rows)
    for (const n of s.notes) log(`  note: ${n}`)

    if (opts.profile) {
      const file = profileFile(s)
      if (file === undefined) {
        log('  no .cpuprofile was written')
        continue
      }
      const summary = summarize(file, 25)
      summary.file = relative(root, file)
      log('')
      log(formatSummary(summary))
      const saved: SavedProfile = { ...summary, scenario: name, ranAt: s.ranAt, commit: s.commit }
      writeFileSync(join(resultsDir, `profile-${name}.json`), JSON.stringify(saved, null, 2) + '\n')
      log(`\n  profile summary saved to ${relative(root, join(resultsDir, `profile-${name}.json`))}`)
      continue
    }
    delete s.profile
    results.scenarios[name] = s
  }

  if (!opts.profile) {
    writeFileSync(latestFile, JSON.stringify(results, null, 2) + '\n')
    writeReport(results)
    log('\n== targets')
    for (const t of evaluateTargets(results)) {
      const verdict = t.pass === null ? 'not measured' : (t.pass ? 'PASS' : 'FAIL')
      log(`  ${verdict.padEnd(12)} ${t.title}: ${t.display} (required ${t.requirement})`)
    }
    log(`\nwrote BENCHMARKS.md, ${relative(root, latestFile)}, ${relative(root, join(resultsDir, 'chart.svg'))}`)
  }
  process.exitCode = failures > 0 ? 1 : 0
}

await main()
// Children are stopped by now; nothing should keep the runner alive.
setTimeout(() => process.exit(process.exitCode ?? 0), 1_000).unref()
