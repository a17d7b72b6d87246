import { test } from 'tap'
import { startGateway, WsClient, DEVICE } from './helpers.js'
import { waitFor } from '../helper.js'

test('a client that sends but never reads cannot make the gateway queue without bound', async (t) => {
  const gw = await startGateway(t)
  const c = await WsClient.connect(gw.wsUrl)
  c.send({ type: 'hello', device_id: DEVICE.device_id, token: DEVICE.token })
  t.equal((await c.frame()).type, 'auth_result')
  // Stop reading, then ask for ~40 MB of pongs.
  c.socket.pause()
  const pad = 'x'.repeat(900 * 1024)
  let peak = 0
  const gatewaySide = [...gw.app.websocketServer.clients][0]
  for (let i = 0; i < 45; i++) {
    if (c.socket.readyState !== c.socket.OPEN) break
    c.send({ type: 'ping', pad })
    await new Promise(resolve => setImmediate(resolve))
    peak = Math.max(peak, gatewaySide.bufferedAmount)
  }
  await waitFor(() => {
    peak = Math.max(peak, gatewaySide.bufferedAmount)
    return gatewaySide.readyState !== gatewaySide.OPEN || gatewaySide.isPaused
  }, 'the gateway stopped reading or dropped the client')
  t.ok(peak < 8 * 512 * 1024 + 2 * 1024 * 1024, `gateway-side queue stayed bounded (peak ${peak} bytes)`)
  c.socket.terminate()

  // Everyone else is served as before.
  const other = await WsClient.connect(gw.wsUrl)
  other.send({ type: 'hello', device_id: DEVICE.device_id, token: DEVICE.token })
  t.equal((await other.frame()).allowed, true)
  other.close()
})
