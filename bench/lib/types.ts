export type ScenarioName = 'http' | 'ws' | 'streams' | 'idle' | 'instructions'
export const SCENARIOS: ScenarioName[] = ['http', 'ws', 'streams', 'idle', 'instructions']
/** What `npm run bench` runs without names: instructions (about 20 minutes under valgrind) only when asked for. */
export const DEFAULT_SCENARIOS: ScenarioName[] = ['http', 'ws', 'streams', 'idle']

export interface BenchOptions {
  scenarios: ScenarioName[]
  durationS: number
  warmupS: number
  /** HTTP connections (wrk -c). */
  connections: number
  /** WebSocket echo connections. */
  wsConnections: number
  /** Idle sessions to try for; undefined: up to 50,000, as many as the open-files limits allow. */
  sessions: number | undefined
  rounds: number
  profile: boolean
  /** Only these targets (direct, nginx, bare, gateway, gateway-token, gateway-apikey, raw); default all (--profile: the gateway's). */
  targets: string[] | undefined
  loadgen: 'wrk' | 'autocannon'
  nginx: boolean
  /** /ws stream_data payload bytes and chunks in flight per stream. */
  chunk: number
  window: number
}

/** One measurement of one target. */
export interface Row {
  scenario: ScenarioName
  /** What is measured: `100 B`, `10 KB`, `64 B`, `16 streams`, ... */
  case: string
  /** `direct`, `nginx`, `bare`, `gateway`, `gateway-token`, `gateway-apikey`, `raw` */
  target: string
  label: string
  value: number
  unit: 'req/s' | 'msg/s' | 'B/s' | 'instructions/req' | 'instructions/msg'
  /** instructions scenario (see WindowsSummary): `value` is the main thread outside GC per request, median window. */
  gcPerOp?: number
  allThreadsPerOp?: number
  windowsPerOp?: number[]
  threads?: number
  p50Ms?: number
  p99Ms?: number
  /** CPU of the process under test during the measurement, in % of one core. */
  proxyCpuPct?: number
  upstreamCpuPct?: number
  /** CPU of the load generator during the measurement, in % of one core (streams: its one client process). */
  loadCpuPct?: number
  /** CPU microseconds of the process under test per request, message or KiB. */
  cpuUsPerOp?: number
  /** Of `cpuUsPerOp`, the part spent in the kernel (system time: system calls, loopback TCP, wake-ups). */
  kernelUsPerOp?: number
  /** Of `cpuUsPerOp`, the part spent in user space (kept per round: the median of a difference is not the difference of medians). */
  userUsPerOp?: number
  errors: number
  /** 1-minute load average of the machine when the measurement started (other work on the box). */
  loadavg: number
  round: number
  tool?: string
}

export interface IdleResult {
  requested: number
  /** Why fewer than requested (or 50,000) were tried, if so. */
  capNote?: string
  upgraded: number
  authenticated: number
  failed: number
  lastError?: string
  upgradesPerSec: number
  hellosPerSec: number
  /** Gateway CPU time per WebSocket upgrade and per hello (auth_result sent). */
  cpuUsPerUpgrade: number
  cpuUsPerHello: number
  gatewayOpenFiles: number
  loadProcesses: number
  sourceAddresses: number
  baseline: MemSample
  connected: MemSample
  authed: MemSample
  rssPerSession: number
  heapPerSession: number
  rssPerConnectionBeforeHello: number
  /**
   * The sessions were opened in steps (one load process each, upgrades then hellos): what each
   * step's sessions added to the gateway's RSS and heap, per session. Flat across steps means
   * the per-session figure does not grow with the count. Absent in results written before.
   */
  steps?: IdleStep[]
}

export interface IdleStep {
  /** Sessions this step authenticated, and all authenticated by the end of it. */
  sessions: number
  total: number
  rssPerSession: number
  heapPerSession: number
}

export interface MemSample {
  vmRss: number
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  arrayBuffers: number
}

export interface ScenarioResult {
  name: ScenarioName
  ranAt: string
  commit: string
  /** The Node version every process of the scenario ran on (absent in results written before it was recorded). */
  node?: string
  /** How `ws` masked and unmasked payloads in every process of the scenario (bench/lib/system.ts wsMasking); absent in older results. */
  wsMasking?: string
  seconds: number
  options: Partial<BenchOptions>
  /** One row per (case, target): the median over rounds. */
  rows: Row[]
  /** Every round's rows, before the medians (ratios are taken round by round from these). */
  roundRows?: Row[]
  idle?: IdleResult
  /** False when the scenario could not run at all (e.g. /ws not there yet). */
  available: boolean
  notes: string[]
  /** The gateway's .cpuprofile of a --profile run. */
  profile?: string
}

export interface MachineInfo {
  cpuModel: string
  cores: number
  memoryBytes: number
  os: string
  node: string
  commit: string
  dirty: boolean
  nginx?: string
  wrk?: string
  loadavgAtStart: number[]
}

export interface Results {
  machine: MachineInfo
  ranAt: string
  options: BenchOptions
  scenarios: Partial<Record<ScenarioName, ScenarioResult>>
}

export interface Context {
  opts: BenchOptions
  machine: MachineInfo
  nginxAvailable: boolean
  loadgen: 'wrk' | 'autocannon'
  profileDir: string
  resultsDir: string
  log: (line: string) => void
}
