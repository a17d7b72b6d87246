import { test, type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import * as http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { changedPaths, gitCommit, wsMasking } from '../../bench/lib/system.js'

/** A scratch repository, untouched by the caller's git environment (a hook's GIT_DIR, say) and config. */
function scratchRepo (t: Test): { dir: string, git: (...args: string[]) => string } {
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('GIT_'))
  for (const [k] of saved) Reflect.deleteProperty(process.env, k)
  const dir = mkdtempSync(join(tmpdir(), 'bench-git-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
    for (const [k, v] of saved) process.env[k] = v
  })
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.email=t@t', '-c', 'user.name=t', '-c', 'commit.gpgsign=false', ...args], { cwd: dir, encoding: 'utf8' })
  return { dir, git }
}

test('gitCommit: the bench output files do not make the tree dirty, any other tracked change does', async (t) => {
  const { dir, git } = scratchRepo(t)
  git('init', '-q')
  mkdirSync(join(dir, 'bench/results'), { recursive: true })
  mkdirSync(join(dir, 'bench/results-old'))
  mkdirSync(join(dir, 'lib'))
  for (const f of ['BENCHMARKS.md', 'bench/results/latest.json', 'bench/results-old/x.json', 'lib/x.ts', 'lib/y.ts']) writeFileSync(join(dir, f), 'a\n')
  git('add', '.')
  git('commit', '-q', '-m', 'first')
  const head = git('rev-parse', '--short=12', 'HEAD').trim()

  t.same(gitCommit(dir), { commit: head, dirty: false })
  writeFileSync(join(dir, 'BENCHMARKS.md'), 'b\n')
  writeFileSync(join(dir, 'bench/results/latest.json'), 'b\n')
  writeFileSync(join(dir, 'untracked.txt'), 'b\n')
  t.same(gitCommit(dir), { commit: head, dirty: false }, 'output files and untracked files only')
  t.same(gitCommit(join(dir, 'lib')), { commit: head, dirty: false }, 'from a subdirectory')
  writeFileSync(join(dir, 'bench/results-old/x.json'), 'b\n')
  t.same(gitCommit(dir), { commit: head, dirty: true }, 'a directory that only starts like bench/results')
  git('checkout', '-q', '--', 'bench/results-old/x.json')
  writeFileSync(join(dir, 'lib/x.ts'), 'b\n')
  t.same(gitCommit(dir), { commit: head, dirty: true }, 'a source file changed')
  t.same(gitCommit(join(dir, 'bench/results')), { commit: head, dirty: true }, 'seen from a subdirectory too')
  git('checkout', '-q', '--', 'lib/x.ts')
  git('mv', 'lib/y.ts', 'bench/results/y.ts')
  t.same(gitCommit(dir), { commit: head, dirty: true }, 'a source file renamed into the output directory')
})

test('gitCommit outside a repository: unknown and clean', async (t) => {
  const { dir } = scratchRepo(t)
  t.same(gitCommit(dir), { commit: 'unknown', dirty: false })
})

test('changedPaths reads porcelain -z: both paths of a rename or copy', async (t) => {
  t.same(changedPaths(''), [])
  t.same(changedPaths(' M lib/x.ts\0M  BENCHMARKS.md\0'), ['lib/x.ts', 'BENCHMARKS.md'])
  t.same(changedPaths('R  bench/results/y.ts\0lib/y.ts\0 M a b.ts\0'), ['bench/results/y.ts', 'lib/y.ts', 'a b.ts'])
  t.same(changedPaths('C  new.ts\0old.ts\0'), ['new.ts', 'old.ts'])
})

test('wsMasking: bufferutil\'s C code (prebuilt for this platform), and JavaScript when WS_NO_BUFFER_UTIL is set', async (t) => {
  const saved = process.env.WS_NO_BUFFER_UTIL
  t.teardown(() => {
    if (saved === undefined) Reflect.deleteProperty(process.env, 'WS_NO_BUFFER_UTIL')
    else process.env.WS_NO_BUFFER_UTIL = saved
  })
  Reflect.deleteProperty(process.env, 'WS_NO_BUFFER_UTIL')
  // Installed with its prebuilt binary (npm ci on Linux x64, as in CI): the C code. Otherwise whatever loads.
  const prebuilt = existsSync(join('node_modules', 'bufferutil', 'prebuilds', `${process.platform}-${process.arch}`)) && !('websocketMask' in http)
  if (prebuilt) t.match(wsMasking(), /^bufferutil \d+\.\d+\.\d+ \(C\)$/)
  else t.match(wsMasking(), /^(bufferutil \S+ \(C\)|JavaScript \(.+\)|Node's own .+)$/)
  process.env.WS_NO_BUFFER_UTIL = '1'
  t.equal(wsMasking(), 'JavaScript (WS_NO_BUFFER_UTIL is set)')
})
