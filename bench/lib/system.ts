import { execFileSync } from 'node:child_process'
import * as http from 'node:http'
import { createRequire } from 'node:module'
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os'
import type { MachineInfo } from './types.js'

function git (args: string[], cwd?: string): string | undefined {
  try {
    return execFileSync('git', ['--no-optional-locks', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return undefined
  }
}

/** The bench's own output: a run that follows a partial or thrown-away run finds it changed, which says nothing of the code. */
function isBenchOutput (path: string): boolean {
  return path === 'BENCHMARKS.md' || path.startsWith('bench/results/')
}

/**
 * The paths of `git status --porcelain -z` (relative to the top of the tree, wherever git runs):
 * `XY path`, and after a rename or copy the path it came from as one more field.
 */
export function changedPaths (porcelain: string): string[] {
  const fields = porcelain.split('\0')
  const paths: string[] = []
  for (let i = 0; i < fields.length; i++) {
    const entry = fields[i]
    if (entry.length < 4) continue
    paths.push(entry.slice(3))
    if ('RC'.includes(entry[0]) || 'RC'.includes(entry[1])) paths.push(fields[++i] ?? '')
  }
  return paths
}

/**
 * HEAD, and whether tracked files other than the bench's own output differ from it. Outside a
 * repository: `unknown` and clean; a repository whose status cannot be read counts as dirty.
 */
export function gitCommit (cwd?: string): { commit: string, dirty: boolean } {
  const commit = git(['rev-parse', '--short=12', 'HEAD'], cwd)?.trim()
  if (commit === undefined || commit === '') return { commit: 'unknown', dirty: false }
  const status = git(['status', '--porcelain', '-z', '--untracked-files=no'], cwd)
  const dirty = status === undefined || changedPaths(status).some(path => !isBenchOutput(path))
  return { commit, dirty }
}

/**
 * How `ws` masks and unmasks payloads, decided the way ws/lib/buffer-util.js decides it: Node's
 * own functions if it has them, else bufferutil's C code (an optional dependency, prebuilt for
 * common platforms) unless WS_NO_BUFFER_UTIL is set, else JavaScript. Every process of the run
 * shares the environment and node_modules, so this holds for the gateway, the bare app, the
 * raw echo server and the load clients alike.
 */
export function wsMasking (): string {
  if ('websocketMask' in http) return 'Node\'s own (http.websocketMask)'
  if (process.env.WS_NO_BUFFER_UTIL !== undefined && process.env.WS_NO_BUFFER_UTIL !== '') return 'JavaScript (WS_NO_BUFFER_UTIL is set)'
  const require = createRequire(import.meta.url)
  let version: string
  try {
    version = (require('bufferutil/package.json') as { version: string }).version
  } catch {
    return 'JavaScript (bufferutil is not installed)'
  }
  // bufferutil falls back to JavaScript itself when its native code does not load.
  const util = require('bufferutil') as { mask: unknown }
  return String(util.mask).includes('[native code]') ? `bufferutil ${version} (C)` : `JavaScript (bufferutil ${version} without its native code)`
}

export function machineInfo (versions: { nginx?: string, wrk?: string }): MachineInfo {
  const list = cpus()
  const { commit, dirty } = gitCommit()
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryBytes: totalmem(),
    os: `${osType()} ${release()}`,
    node: process.version,
    commit,
    dirty,
    nginx: versions.nginx,
    wrk: versions.wrk,
    loadavgAtStart: loadavg().map(n => Math.round(n * 100) / 100)
  }
}
