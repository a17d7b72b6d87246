import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough, type Duplex } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { test } from 'tap'
import { CHANNEL_ENV, readJsonLines, writeJsonLine } from '../../bench/lib/json-lines.js'
import { BENCH_DIST, Child, openFilesLimit } from '../../bench/lib/proc.js'

/**
 * The bench's messages between the runner and its children: JSON lines on a pipe at fd 3,
 * never Node's IPC channel, so that a measured server runs as `npm start` runs it (a Node 24
 * process started with an IPC channel pays for it on every `process.nextTick`: lib/ipc.ts).
 */

test('a bench server starts, reports ready over the pipe, runs without an IPC channel and stops on request', async (t) => {
  const { child, ready } = await Child.start('servers/upstream.js', { name: 'upstream' })
  t.teardown(async () => { await child.stop(5_000) })
  t.type(ready.port, 'number')
  const res = await fetch(`http://127.0.0.1:${ready.port as number}/5`)
  t.equal((await res.arrayBuffer()).byteLength, 5, 'the server it reported is the one serving')
  const environ = readFileSync(`/proc/${child.pid}/environ`, 'latin1').split('\0')
  t.notOk(environ.some(v => v.startsWith('NODE_CHANNEL_FD=')), 'no Node IPC channel')
  await child.stop(5_000)
  t.equal(child.proc.exitCode, 0, 'stopped by the stop message, not killed')
})

test('a bench child exits when the runner\'s end of the pipe closes', async (t) => {
  const { child } = await Child.start('servers/upstream.js', { name: 'upstream' })
  t.teardown(async () => { await child.stop(5_000) })
  ;(child.proc.stdio[3] as Duplex).destroy()
  const code = await Promise.race([child.exited, sleep(10_000).then(() => 'still running')])
  t.equal(code, 0)
})

test('a child started through the open-files wrapper talks over the pipe and runs with the raised limit', async (t) => {
  const { child, ready } = await Child.start('servers/upstream.js', { name: 'upstream', nofile: 4096 })
  t.teardown(async () => { await child.stop(5_000) })
  t.type(ready.port, 'number')
  const soft = openFilesLimit(child.pid)
  t.ok(soft >= Math.min(4096, hardLimit(child.pid)), `open-files limit ${soft}`)
  t.match(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8'), /servers\/upstream\.js/, 'the pid is node itself (exec)')
})

test('the child takes the pipe from its environment and does not pass the variable on', async (t) => {
  const ipc = JSON.stringify(join(BENCH_DIST, 'lib/ipc.js'))
  const script = `const m = await import(${ipc}); m.send({ type: 'seen', env: process.env.${CHANNEL_ENV} ?? null })`
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'], env: { ...process.env, [CHANNEL_ENV]: '3' } })
  const pipe = proc.stdio[3] as Duplex
  const got: Array<{ type: string, env: unknown }> = []
  readJsonLines<{ type: string, env: unknown }>(pipe, 'test child', m => { got.push(m); pipe.destroy() })
  const [code] = await once(proc, 'exit')
  t.equal(code, 0)
  t.same(got, [{ type: 'seen', env: null }])
})

test('a child started without the pipe (by hand) runs, and its messages go nowhere', async (t) => {
  const script = `import(${JSON.stringify(join(BENCH_DIST, 'lib/ipc.js'))}).then(m => { m.send({ type: 'ready' }); console.log('sent') })`
  const env = { ...process.env }
  delete env[CHANNEL_ENV]
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000, env })
  t.equal(stdout.trim(), 'sent')
})

test('JSON lines split across reads and several in one read all arrive, in order; other lines are skipped', async (t) => {
  const stream = new PassThrough()
  const got: unknown[] = []
  const skipped: string[] = []
  const write = process.stderr.write
  process.stderr.write = ((text: string) => { skipped.push(String(text)); return true }) as typeof process.stderr.write
  t.teardown(() => { process.stderr.write = write })
  readJsonLines(stream, 'test', m => { got.push(m) })
  stream.write('{"type":"a","n":1}\n{"ty')
  stream.write('pe":"b","text":"line\\nbreak"}\n\n')
  stream.write('not json\nnull\n{"type":1}\n[]\n')
  const euro = Buffer.from('{"type":"d","text":"€"}\n')
  const inside = euro.indexOf(Buffer.from('€')) + 1
  stream.write(euro.subarray(0, inside))
  stream.write(euro.subarray(inside))
  writeJsonLine(stream, { type: 'c' })
  await new Promise(resolve => setImmediate(resolve))
  process.stderr.write = write
  t.same(got, [{ type: 'a', n: 1 }, { type: 'b', text: 'line\nbreak' }, { type: 'd', text: '€' }, { type: 'c' }])
  t.equal(skipped.length, 4, 'each line that is not a message is reported')
  t.match(skipped[0], /from test .*not json/)
})

/** The hard open-files limit (openFilesLimit gives the soft one). */
function hardLimit (pid: number): number {
  return Number(/^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1])
}
