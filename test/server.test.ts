import { test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import { request, Agent } from 'undici'
import { startHttpUpstream, startWsUpstream, TestClient } from './helper.js'
import { DEVICE, WsClient } from './ws/helpers.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const serverJs = join(root, 'server.js')

interface Running { proc: ChildProcess, url: string, output: () => string, exited: Promise<number | null> }

/** Starts dist/server.js as its own process and waits until it listens. */
async function startServer (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>): Promise<Running> {
  const proc = spawn(process.execPath, [serverJs], {
    env: { PATH: process.env.PATH ?? '', GATEWAY_LISTEN_ADDR: '127.0.0.1:0', GATEWAY_SHUTDOWN_TIMEOUT: '5s', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const exited = once(proc, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (proc.exitCode === null) proc.kill('SIGKILL') })
  const deadline = Date.now() + 20_000
  let match: RegExpMatchArray | null = null
  while (match === null) {
    match = /listening at (https?:\/\/[^\s"]+)/i.exec(out)
    if (proc.exitCode !== null) throw new Error(`server exited: ${out}`)
    if (Date.now() > deadline) throw new Error(`server did not start: ${out}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return { proc, url: match[1], output: () => out, exited }
}

async function runToExit (env: Record<string, string>): Promise<{ code: number | null, stderr: string }> {
  const proc = spawn(process.execPath, [serverJs], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  proc.stdout.resume()
  const [code] = await once(proc, 'exit')
  return { code: code as number | null, stderr }
}

test('a bad config value stops start-up with one line naming the key', async (t) => {
  const bad = await runToExit({ GATEWAY_MAX_STREAMS: 'many' })
  t.equal(bad.code, 1)
  t.equal(bad.stderr, 'invalid configuration: max_streams (GATEWAY_MAX_STREAMS): expected integer, got "many"\n')
  const unknown = await runToExit({ GATEWAY_LISTEN_ADRR: ':1' })
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /^invalid configuration: GATEWAY_LISTEN_ADRR: unknown environment variable/)
  t.notMatch(unknown.stderr, /\n\s+at /, 'no stack trace')
  const upstream = await runToExit({ GATEWAY_DEFAULT_UPSTREAM: 'nope', GATEWAY_LISTEN_ADDR: '127.0.0.1:0' })
  t.equal(upstream.code, 1)
  t.match(upstream.stderr, /^invalid configuration: default_upstream \(GATEWAY_DEFAULT_UPSTREAM\): names "nope", which is not an upstream; known: echo, blackhole, tcp\n$/)
  const tls = await runToExit({ GATEWAY_TLS_CERT_PATH: '/nope/cert.pem', GATEWAY_TLS_KEY_PATH: '/nope/key.pem' })
  t.equal(tls.code, 1)
  t.match(tls.stderr, /^invalid configuration: tls_cert_path \(GATEWAY_TLS_CERT_PATH\): cannot read \/nope\/cert.pem/)
})

test('graceful shutdown: in-flight requests finish, WebSocket clients get 1001', async (t) => {
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  let arrived: () => void = () => {}
  const arrivedP = new Promise<void>(resolve => { arrived = resolve })
  const up = await startHttpUpstream(t, (_req, res) => {
    arrived()
    held.then(() => res.end('finished'), () => {})
  })
  const ws = await startWsUpstream(t)
  const dir = mkdtempSync(join(tmpdir(), 'gw-srv-'))
  const { writeFileSync } = await import('node:fs')
  const file = join(dir, 'config.yaml')
  writeFileSync(file, `routes:\n  - prefix: /api\n    upstream: ${up.url}\n    auth: none\n  - prefix: /live\n    upstream: ${ws.url}\n    websocket: true\n    auth: none\n`)
  const srv = await startServer(t, { GATEWAY_CONFIG: file })

  const client = new TestClient(`${srv.url.replace('http', 'ws')}/live`)
  await client.open()
  client.send('ping')
  t.equal(await client.next(), 'ping')

  const inflight = request(`${srv.url}/api/slow`)
  await arrivedP
  srv.proc.kill('SIGTERM')
  const closed = await client.closed
  t.equal(closed.code, 1001, 'WebSocket client told the server is going away')
  release()
  const res = await inflight
  t.equal(res.statusCode, 200)
  t.equal(await res.body.text(), 'finished')
  t.equal(await srv.exited, 0)
  t.match(srv.output(), /"msg":"shutting down"/)
})

test('TLS: HTTPS and WSS on the same port, /ws binary streams over it, text logs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-tls-'))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' })
  const ws = await startWsUpstream(t)
  const { writeFileSync } = await import('node:fs')
  const file = join(dir, 'config.yaml')
  const device = `devices:\n  - device_id: ${DEVICE.device_id}\n    token: ${DEVICE.token}\n    user_id: ${DEVICE.user_id}\n    subscription_status: active\n`
  writeFileSync(file, `routes:\n  - prefix: /live\n    upstream: ${ws.url}\n    websocket: true\n    auth: none\n${device}`)
  const srv = await startServer(t, { GATEWAY_CONFIG: file, GATEWAY_TLS_CERT_PATH: cert, GATEWAY_TLS_KEY_PATH: key, GATEWAY_LOG_FORMAT: 'text' })
  t.match(srv.url, /^https:/)
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
  t.teardown(async () => await dispatcher.close())
  const res = await request(`${srv.url}/health`, { dispatcher })
  t.equal(res.statusCode, 200)
  await res.body.text()
  const client = new TestClient(`${srv.url.replace('https', 'wss')}/live`, { rejectUnauthorized: false })
  await client.open()
  client.send('secure')
  t.equal(await client.next(), 'secure')
  t.equal(ws.requests[0].headers['x-forwarded-proto'], 'https')
  client.close()
  await client.closed

  // Binary stream_data is written onto the TLS socket beside ws (Session#sendBinaryStreamData).
  const session = await WsClient.connect(`${srv.url.replace('https', 'wss')}/ws`, { rejectUnauthorized: false })
  t.match(await session.hello(), { type: 'auth_result', allowed: true })
  session.openStream(1, 'echo', undefined, true)
  await session.sync()
  const payload = randomBytes(200_000)
  for (let i = 0; i < payload.length; i += 50_000) session.writeBinary(1, payload.subarray(i, i + 50_000))
  session.send({ type: 'ping', marker: 'after' })
  const { bytes, others } = await session.read(1, payload.length)
  t.ok(bytes.equals(payload), 'every byte back, in order, over wss')
  t.ok(others.every(f => f.type === 'pong' && f.marker === 'after'), 'nothing else on the way')
  session.close()
  await session.closed
  t.notMatch(srv.output(), /^\{"level"/m, 'text logs are not JSON')
  srv.proc.kill('SIGTERM')
  t.equal(await srv.exited, 0)
})

test('fastify-cli runs the same app with the same config', async (t) => {
  const cli = join(root, '..', 'node_modules', 'fastify-cli', 'cli.js')
  const proc = spawn(process.execPath, [cli, 'start', '-o', '-l', 'info', '-a', '127.0.0.1', '-p', '0', join(root, 'app.js')], {
    env: { PATH: process.env.PATH ?? '', GATEWAY_METRICS_ENABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (proc.exitCode === null) proc.kill('SIGKILL') })
  let out = ''
  proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const deadline = Date.now() + 20_000
  let match: RegExpMatchArray | null = null
  while (match === null) {
    match = /listening at (http:\/\/[^\s"]+)/i.exec(out)
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`fastify-cli did not start: ${out}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const res = await request(`${match[1]}/metrics`, { headers: { 'x-request-id': 'cli-req-1' } })
  t.equal(res.statusCode, 200, 'config came from the environment')
  t.equal(res.headers['x-request-id'], 'cli-req-1', 'server options came from app.ts')
  await res.body.text()
  proc.kill('SIGTERM')
  await once(proc, 'exit')
})
