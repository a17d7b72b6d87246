import { test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gitCommit } from '../../bench/lib/system.js'

test('gitCommit: the bench output files do not make the tree dirty, any other tracked change does', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-git-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.email=t@t', '-c', 'user.name=t', ...args], { cwd: dir, encoding: 'utf8' })
  git('init', '-q')
  mkdirSync(join(dir, 'bench/results'), { recursive: true })
  mkdirSync(join(dir, 'lib'))
  for (const f of ['BENCHMARKS.md', 'bench/results/latest.json', 'lib/x.ts']) writeFileSync(join(dir, f), 'a\n')
  git('add', '.')
  git('commit', '-q', '-m', 'first')
  const head = git('rev-parse', '--short=12', 'HEAD').trim()

  t.same(gitCommit(dir), { commit: head, dirty: false })
  writeFileSync(join(dir, 'BENCHMARKS.md'), 'b\n')
  writeFileSync(join(dir, 'bench/results/latest.json'), 'b\n')
  writeFileSync(join(dir, 'untracked.txt'), 'b\n')
  t.same(gitCommit(dir), { commit: head, dirty: false }, 'output files and untracked files only')
  // Run from a subdirectory, the exclusions are still from the top of the tree.
  t.same(gitCommit(join(dir, 'lib')), { commit: head, dirty: false }, 'from a subdirectory')
  writeFileSync(join(dir, 'lib/x.ts'), 'b\n')
  t.same(gitCommit(dir), { commit: head, dirty: true }, 'a source file changed')
  t.same(gitCommit(join(dir, 'bench/results')), { commit: head, dirty: true }, 'seen from a subdirectory too')
})

test('gitCommit outside a repository: unknown and clean', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nogit-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  t.same(gitCommit(dir), { commit: 'unknown', dirty: false })
})
