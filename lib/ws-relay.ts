import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import { CloseCode } from './errors.js'
import {
  closeCode, closeFrame, controlFrame, controlPayload, isSendableCloseCode,
  MAX_CONTROL_PAYLOAD, Opcode, parseHeader, type FrameHeader
} from './ws-frames.js'

/**
 * A proxied WebSocket, relayed as bytes. After both handshakes the gateway copies the bytes
 * of each direction from one socket to the other and reads only frame headers: payloads are
 * never unmasked, copied or re-framed (client frames reach the upstream with the client's
 * mask, upstream frames reach the client as they are). That halves the CPU per message of a
 * message-by-message relay and is what nginx does. The header walk is what lets the gateway
 * still act at frame boundaries: hold frames while paused, answer pings while paused, send
 * its own close frames (stop, shutdown, a side that vanished), refuse oversized messages and
 * protocol errors, keep the client alive with its own pings, and count messages and bytes.
 * Control frames (at most 131 bytes) are handled whole; no extension is ever negotiated, so
 * reserved bits are a protocol error.
 */

/** Bytes held per direction while paused before that side is no longer read. */
const DEFAULT_HOLD_LIMIT = 1024 * 1024
/** How long a close handshake may take before both sockets are destroyed. */
const CLOSE_TIMEOUT_MS = 10_000
/** The payload of the gateway's own keep-alive pings: their pongs are not relayed. */
const KEEPALIVE = randomBytes(8)

const EMPTY = Buffer.alloc(0)
const FORWARD = 0
const HOLD = 1
const DROP = 2
type Disposition = typeof FORWARD | typeof HOLD | typeof DROP

/** One socket of a relay and where its close handshake stands. */
class End {
  /** The gateway has written a close frame to this socket. */
  closeSent = false
  /** This socket has sent a close frame. */
  closeReceived = false
  /** The socket has closed. */
  gone = false
  /** The gateway has ended the socket's writable side: nothing more is written to it. */
  ended = false

  constructor (readonly socket: Socket, readonly isClient: boolean) {}

  end (): void {
    this.ended = true
    this.socket.end()
  }

  /** Frames the gateway writes as a client (to the upstream) are masked. */
  get masks (): boolean {
    return !this.isClient
  }
}

export interface RelayOptions {
  log: FastifyBaseLogger
  /** Largest message (all its fragments) either side may send; larger closes both with 1009. */
  maxMessageBytes: number
  /** Bytes held per direction while paused; past it that side is no longer read. Default 1 MiB. */
  pauseBufferBytes?: number
  /** Told of payload bytes and whole messages from the client (`countIn`) and to it (`countOut`). */
  traffic?: { countIn: (bytes: number, messages: number) => void, countOut: (bytes: number, messages: number) => void }
  onClose?: () => void
}

/** One direction: reads `from`, writes `to`, frame by frame. */
class Pipe {
  /** Bytes of a header or control frame that ended a chunk, kept until the rest arrives. */
  private pending: Buffer | null = null
  /** Payload bytes left of the data frame being relayed, and what happens to them. */
  private remaining = 0
  private disposition: Disposition = FORWARD
  /** A fragmented message is open, and its bytes so far. */
  private messageOpen = false
  private messageBytes = 0
  paused = false
  private held: Buffer[] = []
  private heldClose: Buffer | null = null
  heldBytes = 0
  /** Gateway frames waiting for the frame being forwarded to end. */
  private readonly deferred: Buffer[] = []
  /** End `to` once the deferred frames are written (the gateway's close was among them). */
  endAfterDeferred = false
  draining = false
  // Per chunk: the buffer and the start of the bytes to forward that are not written yet.
  private buf: Buffer = EMPTY
  private segment = -1
  private bytes = 0
  private messages = 0

  constructor (
    private readonly relay: Relay,
    readonly from: End,
    readonly to: End,
    private readonly limit: number,
    private readonly maxMessage: number,
    private readonly count: ((bytes: number, messages: number) => void) | undefined
  ) {
    this.onDrain = this.onDrain.bind(this)
  }

  /** The output is between frames: the gateway may write its own frame now. */
  get atBoundary (): boolean {
    return this.remaining === 0 || this.disposition !== FORWARD
  }

  receive (chunk: Buffer): void {
    if (this.from.closeReceived) return
    let buf = chunk
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk])
      this.pending = null
    }
    this.buf = buf
    this.segment = -1
    this.bytes = 0
    this.messages = 0
    const len = buf.length
    let off = 0
    while (off < len) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, len - off)
        this.emit(off, off + n)
        off += n
        this.remaining -= n
        if (this.remaining === 0) this.frameDone(off)
        continue
      }
      const header = parseHeader(buf, off)
      if (header === null) break
      const refused = this.check(header)
      if (refused !== undefined) {
        this.flush(off)
        this.fail(refused[0], refused[1])
        return this.done()
      }
      if (header.opcode >= Opcode.CLOSE) {
        const end = off + header.headerLength + header.payloadLength
        if (end > len) break
        this.flush(off)
        this.control(buf.subarray(off, end), header)
        off = end
        if (this.from.closeReceived) return this.done()
        continue
      }
      this.disposition = this.dispositionNow()
      this.remaining = header.payloadLength
      this.emit(off, off + header.headerLength)
      off += header.headerLength
      if (this.remaining === 0) this.frameDone(off)
    }
    this.flush(off)
    if (off < len) this.pending = Buffer.from(buf.subarray(off))
    this.done()
  }

  private done (): void {
    this.buf = EMPTY
    if (this.bytes > 0 || this.messages > 0) this.count?.(this.bytes, this.messages)
  }

  /** What happens to a frame that starts now. */
  private dispositionNow (): Disposition {
    if (this.to.closeSent || this.to.gone) return DROP
    return this.paused ? HOLD : FORWARD
  }

  /** Checks a header and keeps the message bookkeeping; returns the close code and reason that refuse it. */
  private check (h: FrameHeader): [number, string] | undefined {
    if (h.rsv !== 0) return [CloseCode.PROTOCOL_ERROR, 'reserved bits set']
    if (h.masked !== this.from.isClient) return [CloseCode.PROTOCOL_ERROR, this.from.isClient ? 'client frame not masked' : 'server frame masked']
    if (h.opcode >= Opcode.CLOSE) {
      if (h.opcode > Opcode.PONG) return [CloseCode.PROTOCOL_ERROR, 'unknown opcode']
      if (!h.fin || h.payloadLength > MAX_CONTROL_PAYLOAD) return [CloseCode.PROTOCOL_ERROR, 'bad control frame']
      return undefined
    }
    if (h.opcode > Opcode.BINARY) return [CloseCode.PROTOCOL_ERROR, 'unknown opcode']
    const continuation = h.opcode === Opcode.CONTINUATION
    if (continuation !== this.messageOpen) return [CloseCode.PROTOCOL_ERROR, continuation ? 'unexpected continuation frame' : 'expected a continuation frame']
    const size = (continuation ? this.messageBytes : 0) + h.payloadLength
    if (size > this.maxMessage) return [CloseCode.MESSAGE_TOO_BIG, 'message too big']
    this.messageBytes = size
    this.messageOpen = !h.fin
    this.bytes += h.payloadLength
    if (h.fin) this.messages++
    return undefined
  }

  /** Bytes [a, b) of the current chunk belong to the current data frame. */
  private emit (a: number, b: number): void {
    if (this.disposition === FORWARD) {
      if (this.segment < 0) this.segment = a
      return
    }
    this.flush(a)
    if (this.disposition === HOLD) this.hold(this.buf.subarray(a, b))
  }

  /** Writes the forwarded bytes of the chunk up to `pos`. */
  private flush (pos: number): void {
    const buf = this.buf
    // The usual case, a chunk of whole forwarded frames, is written as it came (no subarray).
    if (this.segment === 0 && pos === buf.length) this.write(buf)
    else if (this.segment >= 0 && pos > this.segment) this.write(buf.subarray(this.segment, pos))
    this.segment = -1
  }

  private frameDone (pos: number): void {
    if (this.deferred.length === 0) return
    this.flush(pos)
    for (const frame of this.deferred.splice(0)) this.write(frame)
    if (this.endAfterDeferred) this.to.end()
  }

  get hasDeferred (): boolean {
    return this.deferred.length > 0
  }

  private control (frame: Buffer, h: FrameHeader): void {
    if (h.opcode === Opcode.CLOSE) {
      const payload = controlPayload(frame, h)
      const code = closeCode(payload)
      if (payload.length === 1 || (code !== undefined && !isSendableCloseCode(code))) {
        this.fail(CloseCode.PROTOCOL_ERROR, 'invalid close frame')
        return
      }
      this.relay.closeFrom(this, frame)
      return
    }
    if (h.opcode === Opcode.PING && this.paused) {
      // Paused: the gateway answers for the other side, so a paused connection is not taken for dead.
      // Only while the answer can go out at once: a peer that pings without reading gets no pile of pongs.
      const back = this.relay.pipeInto(this.from)
      if (!back.draining && !back.hasDeferred) back.inject(controlFrame(Opcode.PONG, controlPayload(frame, h), this.from.masks))
      return
    }
    if (h.opcode === Opcode.PONG && this.from.isClient && h.payloadLength === KEEPALIVE.length && controlPayload(frame, h).equals(KEEPALIVE)) {
      this.relay.alive = true
      return
    }
    const disposition = this.dispositionNow()
    if (disposition === FORWARD) this.write(frame)
    else if (disposition === HOLD) this.hold(frame)
  }

  /** A protocol error or an oversized message from `from`: both sides are closed with `code`. */
  private fail (code: number, reason: string): void {
    this.pending = null
    this.relay.log.debug({ code, reason, from: this.from.isClient ? 'client' : 'upstream' }, 'websocket relay refused a frame')
    // Nothing more is parsed from `from` (its close frame would not be seen either): it counts as closed.
    this.from.closeReceived = true
    this.dropHeld()
    this.relay.sendClose(this.from, code, reason)
    this.relay.sendClose(this.to, code, reason)
  }

  private hold (bytes: Buffer): void {
    this.held.push(Buffer.from(bytes))
    this.heldBytes += bytes.length
    if (this.heldBytes > this.limit) this.updateReading()
  }

  write (data: Buffer): void {
    // Checked on a plain field: a stream getter here is a measurable share of a 64-byte message.
    if (this.to.gone || this.to.ended) return
    if (!this.to.socket.write(data) && !this.draining) {
      this.draining = true
      this.to.socket.once('drain', this.onDrain)
      this.updateReading()
    }
  }

  private onDrain (): void {
    this.draining = false
    this.updateReading()
  }

  outputGone (): void {
    if (!this.draining) return
    this.to.socket.removeListener('drain', this.onDrain)
    this.onDrain()
  }

  /** `from` is read only while its frames can go somewhere: never dropped for being slow, only not read. */
  updateReading (): void {
    const socket = this.from.socket
    const stop = this.draining || this.heldBytes > this.limit
    if (stop && !socket.isPaused()) socket.pause()
    else if (!stop && socket.isPaused() && !this.from.gone) socket.resume()
  }

  /** A frame of the gateway's own, written at the next frame boundary of this output. */
  inject (frame: Buffer): void {
    if (this.atBoundary) this.write(frame)
    else this.deferred.push(frame)
  }

  resume (): void {
    this.paused = false
    if (this.held.length > 0) {
      const held = this.held
      this.held = []
      this.heldBytes = 0
      if (!this.to.closeSent) this.write(held.length === 1 ? held[0] : Buffer.concat(held))
    }
    if (this.remaining > 0 && this.disposition === HOLD) this.disposition = FORWARD
    const close = this.heldClose
    this.heldClose = null
    if (close !== null) this.relay.passClose(this, close)
    this.updateReading()
  }

  /** A close frame that came while paused: it goes after what was held, on resume. */
  holdClose (frame: Buffer): void {
    this.heldClose = Buffer.from(frame)
  }

  /** Forgets what was held (the connection is closing) and reads `from` again so its close arrives. */
  dropHeld (): void {
    this.paused = false
    this.heldClose = null
    this.held = []
    this.heldBytes = 0
    if (this.remaining > 0 && this.disposition === HOLD) this.disposition = DROP
    this.updateReading()
  }
}

/** What the owner of a relay can do with it (the connection registry's controls). */
export interface RelayControls {
  /** Forward nothing either way; frames are held in order (pings are still answered). */
  pause: () => void
  /** Deliver what was held, in order, and forward again. */
  resume: () => void
  /** Close the client with `code` and `reason`, and the upstream with 1001. */
  stop: (code: number, reason: string) => void
}

export class Relay implements RelayControls {
  readonly client: End
  readonly upstream: End
  /** Client to upstream, and upstream to client. */
  private readonly up: Pipe
  private readonly down: Pipe
  /** The client answered the last keep-alive ping. */
  alive = true
  readonly log: FastifyBaseLogger
  private closeTimer: NodeJS.Timeout | undefined
  private finished = false

  constructor (clientSocket: Socket, upstreamSocket: Socket, private readonly opts: RelayOptions) {
    this.log = opts.log
    this.client = new End(clientSocket, true)
    this.upstream = new End(upstreamSocket, false)
    const limit = opts.pauseBufferBytes ?? DEFAULT_HOLD_LIMIT
    const traffic = opts.traffic
    this.up = new Pipe(this, this.client, this.upstream, limit, opts.maxMessageBytes, traffic === undefined ? undefined : (b, m) => { traffic.countIn(b, m) })
    this.down = new Pipe(this, this.upstream, this.client, limit, opts.maxMessageBytes, traffic === undefined ? undefined : (b, m) => { traffic.countOut(b, m) })
  }

  /** Starts relaying; `clientHead` and `upstreamHead` are bytes each side sent along with its handshake. */
  start (clientHead: Buffer, upstreamHead: Buffer): void {
    this.attach(this.client, this.up)
    this.attach(this.upstream, this.down)
    if (upstreamHead.length > 0) this.down.receive(upstreamHead)
    if (clientHead.length > 0) this.up.receive(clientHead)
  }

  private attach (end: End, pipe: Pipe): void {
    const socket = end.socket
    socket.setTimeout(0)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => { pipe.receive(chunk) })
    socket.on('end', () => {
      this.lost(end)
      end.end()
    })
    socket.on('error', (err) => {
      if (end.isClient) this.log.debug({ err }, 'websocket client error')
      else this.log.warn({ err }, 'websocket upstream error')
    })
    socket.on('close', () => {
      this.lost(end)
      end.gone = true
      // Writes into it are over: a 'drain' will never come, so its source is read again.
      this.pipeInto(end).outputGone()
      if (this.client.gone && this.upstream.gone) this.finish()
      else this.armCloseTimer()
    })
    socket.resume()
  }

  /** The output that writes to `end`. */
  pipeInto (end: End): Pipe {
    return end === this.client ? this.down : this.up
  }

  private other (end: End): End {
    return end === this.client ? this.upstream : this.client
  }

  /** A close frame came from `pipe.from`: relayed as it is (code and reason untouched) unless the gateway already closed that way. */
  closeFrom (pipe: Pipe, frame: Buffer): void {
    pipe.from.closeReceived = true
    // Paused: the close keeps its place after the held frames (its sender is not read any more).
    if (pipe.paused) pipe.holdClose(frame)
    else this.passClose(pipe, frame)
  }

  /** Relays a close frame from `pipe.from` to `pipe.to`, and ends whichever side has finished its handshake. */
  passClose (pipe: Pipe, frame: Buffer): void {
    const from = pipe.from
    const to = pipe.to
    if (!to.closeSent && !to.gone) {
      to.closeSent = true
      pipe.write(frame)
      if (to.closeReceived) this.endSocket(to)
    }
    if (from.closeSent) this.endSocket(from)
    this.armCloseTimer()
  }

  /** The gateway closes `end` with its own close frame (at that output's next frame boundary). */
  sendClose (end: End, code: number, reason: string): void {
    if (end.closeSent || end.gone) return
    end.closeSent = true
    this.pipeInto(end).inject(closeFrame(code, reason, end.masks))
    if (end.closeReceived) this.endSocket(end)
    this.armCloseTimer()
  }

  /** Ends `end`'s TCP connection once the gateway's frames still waiting for it are written. */
  endSocket (end: End): void {
    if (end.gone) return
    const pipe = this.pipeInto(end)
    if (pipe.hasDeferred) pipe.endAfterDeferred = true
    else end.end()
  }

  /** `end` ended or closed its TCP connection; without a close frame first, the other side is told why. */
  private lost (end: End): void {
    if (end.closeReceived || end.gone) return
    end.closeReceived = true
    const other = this.other(end)
    // A frame cut off half-way cannot be followed by a close frame: the other side is dropped too.
    if (!this.pipeInto(other).atBoundary) {
      other.socket.destroy()
      return
    }
    if (end.isClient) this.sendClose(other, CloseCode.GOING_AWAY, 'client went away')
    else this.sendClose(other, CloseCode.BAD_GATEWAY, 'upstream connection lost')
    // Nothing is left to relay, so the other side's close answer is not awaited.
    this.endSocket(other)
  }

  private armCloseTimer (): void {
    if (this.closeTimer !== undefined || this.finished) return
    this.closeTimer = setTimeout(() => { this.terminate() }, CLOSE_TIMEOUT_MS)
    this.closeTimer.unref()
  }

  private finish (): void {
    if (this.finished) return
    this.finished = true
    clearTimeout(this.closeTimer)
    this.opts.onClose?.()
  }

  /** Drops both connections at once, without a close handshake. */
  terminate (): void {
    this.client.socket.destroy()
    this.upstream.socket.destroy()
  }

  /**
   * Called by the keep-alive interval: pings the client with the gateway's own payload (its pong
   * is not relayed); a client that did not answer the previous ping is dropped. A client the
   * gateway is not reading (paused past the bound, or waiting for the upstream to drain)
   * cannot answer, so it is not judged.
   */
  heartbeat (): void {
    if (this.client.closeSent || this.client.gone) return
    // Not read, or the last ping still waits behind a frame under way: the client could not have answered.
    if (this.client.socket.isPaused() || this.down.hasDeferred) {
      this.alive = true
      return
    }
    if (!this.alive) {
      this.log.debug('websocket client missed a ping; dropped')
      this.terminate()
      return
    }
    this.alive = false
    this.down.inject(controlFrame(Opcode.PING, KEEPALIVE, false))
  }

  pause (): void {
    this.up.paused = true
    this.down.paused = true
  }

  resume (): void {
    this.up.resume()
    this.down.resume()
  }

  stop (code: number, reason: string): void {
    this.up.dropHeld()
    this.down.dropHeld()
    this.sendClose(this.client, code, reason)
    this.sendClose(this.upstream, CloseCode.GOING_AWAY, 'connection stopped by the gateway')
  }
}
