import { execFileSync, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { findExecutable } from './proc.js'

export const VALGRIND_INSTALL_HINT = 'apt-get install -y valgrind'

/** `valgrind-3.19.0`, or undefined when valgrind or its callgrind_control is not installed. */
export function valgrindVersion (): string | undefined {
  const bin = findExecutable('valgrind')
  if (bin === undefined || findExecutable('callgrind_control') === undefined) return undefined
  const out = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  return out.status === 0 ? out.stdout.trim() : undefined
}

/**
 * The command that runs a Node process under callgrind. One output file per thread
 * (`--separate-threads`), so the main thread's count can be told from V8's GC and compiler
 * threads; `--smc-check` because V8 writes and rewrites machine code on the heap.
 */
export function callgrindWrapper (outFile: string): string[] {
  return ['valgrind', '--tool=callgrind', `--callgrind-out-file=${outFile}`, '--dump-instr=no', '--separate-threads=yes', '--smc-check=all-non-file', '--quiet']
}

/** The instructions counted in one callgrind dump file (its `totals:` line, else `summary:`). */
export function dumpTotal (text: string): number {
  const match = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text)
  if (match === null) throw new Error('not a callgrind dump: no totals or summary line')
  return Number(match[1])
}

export interface DumpCounts {
  /** Instructions of the main thread (thread 1: the event loop, JavaScript, most of GC). */
  main: number
  /** Of `main`, those in V8's garbage collectors (gcInstructions). */
  mainGc: number
  /** Instructions of every thread (V8's GC helpers and compilers, libuv's pool). */
  all: number
  threads: number
}

/**
 * The counts of dump number `n` of a run with `--callgrind-out-file=<outFile>`: callgrind names
 * them `<outFile>.<n>-<thread>` (thread 01 first).
 */
export function readDump (outFile: string, n: number): DumpCounts {
  const files = dumpFiles(outFile, n)
  if (files.length === 0) throw new Error(`callgrind wrote no dump ${n} (${outFile}.${n}-*)`)
  const texts = files.map(f => readFileSync(join(dirname(outFile), f), 'utf8'))
  const counts = texts.map(dumpTotal)
  return { main: counts[0], mainGc: gcInstructions(texts[0]), all: counts.reduce((a, b) => a + b, 0), threads: files.length }
}

/** The file names of dump number `n`, one per thread, thread 01 first. */
export function dumpFiles (outFile: string, n: number): string[] {
  const prefix = `${basename(outFile)}.${n}-`
  return readdirSync(dirname(outFile)).filter(f => f.startsWith(prefix)).sort()
}

/** Zeroes the counters of a process running under callgrind. */
export function zeroCounts (pid: number): void {
  execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore', timeout: 60_000 })
}

/** Makes a process running under callgrind write its counters (the next dump number). */
export function dumpCounts (pid: number): void {
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore', timeout: 120_000 })
}

/** V8's garbage collectors: scavenges (young generation) and mark-compact, with their sweepers and tracers. */
const GC_FUNCTION = /v8::internal::(?:\w+::)*(?:\w*Scaveng|\w*Mark(?:ing|Compact)|\w*Sweep|\w*Evacuat|GCTracer|Heap::(?:Collect|PerformGarbageCollection))/

/**
 * The instructions a dump spent in V8's garbage collectors: the self cost of every function
 * whose (demangled) name is one of theirs. Self cost lines are `<position> <Ir>` under the
 * current `fn=`; the line after `calls=` is the inclusive cost of that call and is skipped.
 * Names are given once as `fn=(id) name` and then as `fn=(id)` (and likewise in `cfn=`).
 */
export function gcInstructions (text: string): number {
  const names = new Map<string, string>()
  let isGc = false
  let skipNext = false
  let total = 0
  for (const line of text.split('\n')) {
    if (skipNext) {
      skipNext = false
      continue
    }
    const c = line.charCodeAt(0)
    if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 42) { // digit + - *
      if (isGc) total += Number(line.slice(line.indexOf(' ') + 1).split(' ')[0])
    } else if (line.startsWith('fn=') || line.startsWith('cfn=')) {
      const m = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line)
      const name = m === null ? line.slice(line.indexOf('=') + 1) : (m[2] !== undefined ? m[2] : names.get(m[1]) ?? '')
      if (m !== null && m[2] !== undefined) names.set(m[1], m[2])
      if (c === 102) isGc = GC_FUNCTION.test(name) // fn=, not cfn=
    } else if (line.startsWith('calls=')) {
      skipNext = true
    }
  }
  return total
}
