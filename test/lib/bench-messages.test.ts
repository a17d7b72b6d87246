import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { promisify } from 'node:util'
import { test } from 'tap'
import { readJsonLines, writeJsonLine } from '../../bench/lib/json-lines.js'
import { BENCH_DIST, Child } from '../../bench/lib/proc.js'

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
  t.equal(await child.exited, 0)
})

test('a child started without the pipe (by hand) runs, and its messages go nowhere', async (t) => {
  const script = `import(${JSON.stringify(join(BENCH_DIST, 'lib/ipc.js'))}).then(m => { m.send({ type: 'ready' }); console.log('sent') })`
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 })
  t.equal(stdout.trim(), 'sent')
})

test('JSON lines split across reads and several in one read all arrive, in order', async (t) => {
  const { PassThrough } = await import('node:stream')
  const stream = new PassThrough()
  const got: unknown[] = []
  readJsonLines(stream, m => { got.push(m) })
  stream.write('{"type":"a","n":1}\n{"ty')
  stream.write('pe":"b","text":"line\\nbreak"}\n\n')
  writeJsonLine(stream, { type: 'c' })
  await new Promise(resolve => setImmediate(resolve))
  t.same(got, [{ type: 'a', n: 1 }, { type: 'b', text: 'line\nbreak' }, { type: 'c' }])
})
