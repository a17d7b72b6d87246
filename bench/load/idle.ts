/**
 * Idle `/ws` sessions, in its own process, in phases the runner steps through:
 * `upgrade` (open `count` WebSockets, spread over several 127.0.0.x source addresses),
 * `hello` (authenticate them all, `helloWindow` at a time), then `close`.
 * Each phase is bounded in time; counts are reported as they are.
 */
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as ipc from '../lib/ipc.js'

export interface IdleOptions {
  url: string
  count: number
  /** Source addresses to spread the connections over (one has ~28k ephemeral ports). */
  addresses: string[]
  perAddress: number
  connectWindow: number
  helloWindow: number
  deviceId: string
  token: string
  phaseTimeoutMs: number
}

const opts = ipc.options<IdleOptions>()
ipc.bound(opts.phaseTimeoutMs * 3 + 10 * 60_000)

const sockets: WebSocket[] = []
let lastError = ''

async function windowed (count: number, window: number, start: (i: number) => Promise<boolean>): Promise<{ ok: number, failed: number, seconds: number, timedOut: boolean }> {
  const began = performance.now()
  const deadline = began + opts.phaseTimeoutMs
  let next = 0
  let ok = 0
  let failed = 0
  let timedOut = false
  await new Promise<void>(resolve => {
    let active = 0
    const pump = (): void => {
      if (performance.now() > deadline) timedOut = true
      const room = timedOut || failed >= 1000 ? 0 : Math.min(window - active, count - next)
      for (let k = 0; k < room; k++) {
        const i = next++
        active++
        start(i).then(good => { if (good) ok++; else failed++ }, () => { failed++ }).finally(() => { active--; pump() })
      }
      if (active === 0) resolve()
    }
    pump()
  })
  return { ok, failed, seconds: (performance.now() - began) / 1000, timedOut }
}

function upgrade (i: number): Promise<boolean> {
  return new Promise(resolve => {
    const localAddress = opts.addresses[Math.floor(i / opts.perAddress) % opts.addresses.length]
    const socket = new WebSocket(opts.url, { localAddress, perMessageDeflate: false, handshakeTimeout: 30_000 })
    socket.on('error', (err) => { lastError = err.message; resolve(false) })
    socket.once('open', () => { sockets.push(socket); resolve(true) })
  })
}

const hello = JSON.stringify({ type: 'hello', device_id: opts.deviceId, token: opts.token })

function authenticate (i: number): Promise<boolean> {
  const socket = sockets[i]
  return new Promise(resolve => {
    if (socket.readyState !== WebSocket.OPEN) return resolve(false)
    const timer = setTimeout(() => { lastError = 'no auth_result within 30 s'; resolve(false) }, 30_000)
    socket.once('message', (data: Buffer) => {
      clearTimeout(timer)
      const text = data.toString()
      const good = text.includes('"auth_result"') && text.includes('"allowed":true')
      if (!good) lastError = text.slice(0, 200)
      resolve(good)
    })
    socket.send(hello)
  })
}

ipc.on('upgrade', async () => {
  const r = await windowed(opts.count, opts.connectWindow, upgrade)
  ipc.send({ type: 'upgraded', ...r, lastError })
})

ipc.on('hello', async () => {
  const r = await windowed(sockets.length, opts.helloWindow, authenticate)
  const open = sockets.filter(s => s.readyState === WebSocket.OPEN).length
  ipc.send({ type: 'authed', ...r, open, lastError })
})

ipc.on('close', () => {
  for (const s of sockets) s.terminate()
  ipc.send({ type: 'closed' })
})

ipc.on('stop', () => {
  for (const s of sockets) s.terminate()
  setTimeout(() => process.exit(0), 100)
})

ipc.send({ type: 'ready' })
