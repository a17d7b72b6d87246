/**
 * Byte-stream load, in its own process. `gateway` mode: one WebSocket to the gateway's `/ws`,
 * hello, `streams` echo streams, each keeping `window` chunks of `chunk` bytes in flight as
 * JSON `stream_data` frames. `binary` mode: the same with binary `stream_data` messages both
 * ways (`stream_open` with `binary: true`). `raw` mode: the same bytes in flight as binary
 * messages to a plain `ws` echo server. Counts echoed payload bytes received inside the
 * measurement window.
 */
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { BINARY_ID_INTEGER, BINARY_STREAM_DATA, binaryStreamDataFrame, binaryStreamDataHead } from '../../lib/session/framing.js'
import * as ipc from '../lib/ipc.js'

export interface StreamsOptions {
  mode: 'gateway' | 'binary' | 'raw'
  url: string
  streams: number
  chunk: number
  window: number
  warmupMs: number
  durationMs: number
  deviceId?: string
  token?: string
}

const opts = ipc.options<StreamsOptions>()
ipc.bound(opts.warmupMs + opts.durationMs + 60_000)
ipc.send({ type: 'ready' })

let phase: 'warmup' | 'measure' | 'done' = 'warmup'
let bytes = 0
let errors = 0
let lastError = ''
const payload = randomBytes(opts.chunk)

const socket = new WebSocket(opts.url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, handshakeTimeout: 10_000 })
socket.on('error', (err) => { errors++; lastError = err.message })
const closed = new Promise<string>(resolve => socket.on('close', (code, reason) => resolve(`${code} ${reason.toString()}`)))
await new Promise<void>((resolve, reject) => {
  socket.once('open', () => resolve())
  socket.once('error', reject)
})

function fail (message: string): never {
  ipc.send({ type: 'result', error: message })
  socket.terminate()
  setTimeout(() => process.exit(0), 100)
  throw new Error(message)
}

if (opts.mode === 'raw') {
  const inFlight = opts.window * opts.streams
  let outstanding = 0
  socket.on('message', (data: Buffer) => {
    if (phase === 'measure') bytes += data.length
    outstanding--
    if (phase !== 'done') { socket.send(payload, { binary: true }); outstanding++ }
  })
  for (; outstanding < inFlight; outstanding++) socket.send(payload, { binary: true })
} else {
  socket.send(JSON.stringify({ type: 'hello', device_id: opts.deviceId, token: opts.token }))
  const first = await new Promise<Buffer>((resolve) => socket.once('message', resolve))
  const auth = JSON.parse(first.toString()) as { type: string, allowed?: boolean, reason?: string }
  if (auth.type !== 'auth_result' || auth.allowed !== true) fail(`hello refused: ${first.toString().slice(0, 200)}`)

  const outstanding = new Array<number>(opts.streams).fill(0)
  const checked = new Array<boolean>(opts.streams).fill(false)
  /** Counts `n` echoed bytes of stream `id` and keeps its window full. */
  const echoed = (id: number, n: number): void => {
    if (phase === 'measure') bytes += n
    outstanding[id] -= n
    if (phase === 'done') return
    for (let i = 0; i < opts.window && outstanding[id] <= (opts.window - 1) * opts.chunk; i++) sendChunk(id)
  }
  const check = (id: number, echo: Buffer): void => {
    // Once per stream: the echo is the bytes that were sent.
    checked[id] = true
    if (!echo.equals(payload.subarray(0, echo.length))) { errors++; lastError = 'echo differs from what was sent' }
  }
  let sendChunk: (id: number) => void
  let onFrame: (data: Buffer, isBinary: boolean) => void
  if (opts.mode === 'binary') {
    // Integer ids: [0x01][0x00][id, 8 bytes big-endian] then the payload (docs/protocol.md).
    const heads = Array.from({ length: opts.streams }, (_, id) => binaryStreamDataHead(id))
    const HEAD = heads[0].length
    const frames = heads.map(head => binaryStreamDataFrame(head, payload))
    sendChunk = (id) => {
      socket.send(frames[id], { binary: true })
      outstanding[id] += opts.chunk
    }
    onFrame = (data, isBinary) => {
      if (isBinary && data.length >= HEAD && data[0] === BINARY_STREAM_DATA && data[1] === BINARY_ID_INTEGER) {
        const id = data.readUInt32BE(6)
        if (!checked[id]) check(id, data.subarray(HEAD))
        echoed(id, data.length - HEAD)
        return
      }
      errors++
      lastError = data.toString().slice(0, 200)
    }
  } else {
    // Frames are made once, as UTF-8 bytes, and the client reads answers without decoding them
    // (see onFrame), so that the load generator costs about as little CPU per byte as the raw
    // one: given a string, `ws` would encode its 21 KiB to UTF-8 on every send before masking.
    const b64 = payload.toString('base64')
    const frames = Array.from({ length: opts.streams }, (_, id) => Buffer.from(JSON.stringify({ type: 'stream_data', stream_id: id, data: b64 })))
    const PREFIX = Buffer.from('{"type":"stream_data","stream_id":')
    const DATA = Buffer.from(',"data":"')
    sendChunk = (id) => {
      socket.send(frames[id], { binary: false })
      outstanding[id] += opts.chunk
    }
    onFrame = (data) => {
      if (data.subarray(0, PREFIX.length).equals(PREFIX)) {
        const at = data.indexOf(DATA, PREFIX.length)
        const id = Number(data.subarray(PREFIX.length, at).toString())
        const start = at + DATA.length
        const end = data.length - 2 // `"}`
        let padding = 0
        if (data[end - 1] === 61) padding++
        if (data[end - 2] === 61) padding++
        if (!checked[id]) check(id, Buffer.from((JSON.parse(data.toString()) as { data: string }).data, 'base64'))
        echoed(id, ((end - start) / 4) * 3 - padding)
        return
      }
      errors++
      lastError = data.toString().slice(0, 200)
    }
  }
  socket.on('message', onFrame)
  for (let id = 0; id < opts.streams; id++) {
    socket.send(JSON.stringify({ type: 'stream_open', stream_id: id, upstream: 'echo', binary: opts.mode === 'binary' ? true : undefined }))
    for (let i = 0; i < opts.window; i++) sendChunk(id)
  }
}

await new Promise(resolve => setTimeout(resolve, opts.warmupMs))
phase = 'measure'
const windowStart = performance.now()
ipc.send({ type: 'measuring' })
await new Promise(resolve => setTimeout(resolve, opts.durationMs))
phase = 'done'
const seconds = (performance.now() - windowStart) / 1000
const open = socket.readyState === WebSocket.OPEN
ipc.send({
  type: 'result',
  bytes,
  seconds,
  bytesPerSec: bytes / seconds,
  errors,
  lastError,
  error: open ? undefined : `socket closed during the run: ${await Promise.race([closed, Promise.resolve('?')])}`
})
socket.terminate()
setTimeout(() => process.exit(0), 200)
