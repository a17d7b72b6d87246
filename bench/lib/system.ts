import { execFileSync } from 'node:child_process'
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os'
import type { MachineInfo } from './types.js'

function git (args: string[], cwd?: string): string {
  try {
    return execFileSync('git', ['--no-optional-locks', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return ''
  }
}

/** The bench's own output: a run that follows a partial or thrown-away run finds them changed, which says nothing of the code. */
const OUTPUTS = [':(top,exclude)BENCHMARKS.md', ':(top,exclude)bench/results']

/** HEAD, and whether tracked files other than the bench's own output differ from it. */
export function gitCommit (cwd?: string): { commit: string, dirty: boolean } {
  const commit = git(['rev-parse', '--short=12', 'HEAD'], cwd) || 'unknown'
  const dirty = git(['status', '--porcelain', '--untracked-files=no', '--', ':(top)', ...OUTPUTS], cwd) !== ''
  return { commit, dirty }
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
