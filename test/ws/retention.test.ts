import { test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { ClientRequest } from 'node:http'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { FastifyInstance } from 'fastify'
import { buildGateway, rawRequest, startWsUpstream, TestClient, waitFor } from '../helper.js'
import { DEVICE, startGateway, WsClient } from './helpers.js'

// A WeakRef shows whether the upgrade's objects are still reachable once V8 has collected.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

type Refs = Array<[string, WeakRef<object>]>

/** Holds weak references to the request, reply, IncomingMessage and ServerResponse of every WebSocket upgrade. */
function trackUpgrades (refs: Refs): (app: FastifyInstance) => void {
  return (app) => {
    app.addHook('onRequest', (request, reply, done) => {
      if (request.ws) {
        refs.push(['Fastify request', new WeakRef(request)], ['Fastify reply', new WeakRef(reply)],
          ['IncomingMessage', new WeakRef(request.raw)], ['ServerResponse', new WeakRef(reply.raw)])
      }
      done()
    })
  }
}

/** The names of the tracked objects still alive after collections (none, once they are free). */
async function stillAlive (refs: Refs): Promise<string[]> {
  const alive = (): string[] => refs.filter(([, ref]) => ref.deref() !== undefined).map(([name]) => name)
  // WeakRefs keep their target until the current job ends: collect between turns of the event loop.
  await waitFor(async () => {
    await new Promise(resolve => setImmediate(resolve))
    gc()
    return alive().length === 0
  }, 'the upgrade objects to be collected', 5_000).catch(() => {})
  return alive()
}

test('a live /ws session does not keep its upgrade request, reply or their HTTP objects', async (t) => {
  const refs: Refs = []
  const gw = await buildGateway(t, { devices: [DEVICE] }, trackUpgrades(refs))
  const client = await WsClient.connect(`${gw.wsUrl}/ws`)
  t.equal((await client.hello()).allowed, true)
  client.openStream('e', 'echo')
  client.write('e', 'hello')
  t.equal((await client.read('e', 5)).bytes.toString(), 'hello')
  t.equal(refs.length, 4, 'the upgrade was tracked')

  t.same(await stillAlive(refs), [], 'all collected')
  t.equal(gw.app.sessions.stats().sessions, 1, 'while the session lives')

  // The session goes on working without them.
  client.write('e', 'still here')
  t.equal((await client.read('e', 10)).bytes.toString(), 'still here')
  client.close()
  await waitFor(() => gw.app.sessions.stats().connections === 0, 'the session to go')
})

test('a live proxied WebSocket does not keep its upgrade request, reply or their HTTP objects, nor its upstream handshake\'s', async (t) => {
  const refs: Refs = []
  const up = await startWsUpstream(t)
  // The gateway's own handshake with the upstream (the test's client makes one too, to the gateway):
  // its ClientRequest and that request's Agent.
  const upstreamHost = new URL(up.url).host
  const onUpstreamRequest = (message: unknown): void => {
    const { request } = message as { request: ClientRequest & { agent?: object } }
    if (request.getHeader('host') !== upstreamHost) return
    refs.push(['upstream ClientRequest', new WeakRef(request)])
    if (request.agent !== undefined) refs.push(['upstream Agent', new WeakRef(request.agent)])
  }
  subscribe('http.client.request.start', onUpstreamRequest)
  t.teardown(() => { unsubscribe('http.client.request.start', onUpstreamRequest) })
  const gw = await buildGateway(t, { routes: [{ prefix: '/live', upstream: up.url, websocket: true, auth: 'none' }] }, trackUpgrades(refs))
  const client = new TestClient(`${gw.wsUrl}/live/echo`)
  await client.open()
  client.send('one')
  t.equal(await client.next(), 'one')
  t.equal(refs.length, 6, 'the upgrade and the upstream handshake were tracked')

  t.same(await stillAlive(refs), [], 'all collected')
  t.equal(gw.app.websocketRelays.size, 1, 'while the relay lives')

  client.send('two')
  t.equal(await client.next(), 'two')
  client.close()
  t.equal((await client.closed).code, 1005)
  await waitFor(() => gw.app.websocketRelays.size === 0, 'the relay to go')
})

test('a WebSocket protocol error on a session is logged and closes only that socket', async (t) => {
  const gw = await startGateway(t, {}, { logs: true })
  const bad = await WsClient.connect(gw.wsUrl)
  const good = await WsClient.connect(gw.wsUrl)
  t.equal((await good.hello()).allowed, true)

  // A text message that is not UTF-8: `ws` closes with 1007 and emits 'error' on the server side.
  bad.socket.send(Buffer.from([0xc3, 0x28]), { binary: false })
  t.equal((await bad.closed).code, 1007)
  await waitFor(() => gw.logs.some(l => l.includes('WS_ERR_INVALID_UTF8')), 'the error to be logged')
  const lines = gw.logs.filter(l => l.includes('WS_ERR_INVALID_UTF8'))
  t.equal(lines.length, 1, 'once: the replaced listener is gone')
  const logged = JSON.parse(lines[0])
  t.equal(logged.level, 50, 'at error level')
  t.type(logged.reqId, 'string', 'with the upgrade request\'s id')

  // The other session is untouched, with one error listener on its WebSocket.
  await waitFor(() => gw.app.websocketServer.clients.size === 1, 'the bad socket to leave the server')
  t.same([...gw.app.websocketServer.clients].map(c => c.listenerCount('error')), [1])
  good.openStream('e', 'echo')
  good.write('e', 'fine')
  t.equal((await good.read('e', 4)).bytes.toString(), 'fine')
  await waitFor(() => gw.app.sessions.stats().connections === 1, 'only the bad socket to go')
  good.close()
})

test('a HEAD /ws with upgrade headers still gets its 426 and its socket closed', async (t) => {
  const gw = await startGateway(t)
  // rawRequest returns once the gateway has closed the socket, and fails if it never does.
  const answer = await rawRequest(gw.url, 'HEAD /ws HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 5_000)
  t.match(answer, /^HTTP\/1\.1 426 /, 'answered 426, then closed by the gateway')
})
