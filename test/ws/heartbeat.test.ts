import { test } from 'tap'
import { startGateway, waitFor, WsClient } from './helpers.js'

test('the ping interval keeps a client that answers pings and drops one that does not', async (t) => {
  const gw = await startGateway(t, { ping_interval: '500ms' })
  const live = await WsClient.connect(gw.wsUrl)
  t.equal((await live.hello()).allowed, true)
  // `ws` answers pings itself unless told not to: this one stays silent.
  const silent = await WsClient.connect(gw.wsUrl, { autoPong: false })
  t.equal((await silent.hello()).allowed, true)

  // A ping, then a missed pong at the next tick: terminated without a close frame.
  t.equal((await silent.closed).code, 1006)
  await waitFor(() => gw.app.sessions.stats().connections === 1, 'the silent session to go')

  // The one that answers is still there after several more intervals.
  await new Promise(resolve => setTimeout(resolve, 1_500))
  t.equal(gw.app.websocketServer.clients.size, 1)
  live.openStream('e', 'echo')
  live.write('e', 'alive')
  t.equal((await live.read('e', 5)).bytes.toString(), 'alive')
  live.close()
})
