import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import WebSocket, { type RawData } from 'ws'
import { CloseCode, WsErrorCode } from '../errors.js'
import { isCheckFailure, type DeviceAuthenticator, type DeviceCheck } from '../auth/types.js'
import type { UpstreamRegistry } from '../upstreams/index.js'
import { UpstreamRefusedError } from '../upstreams/types.js'
import {
  StreamCloseReasons, type StreamCloseReason,
  type ClientFrame, type HelloFrame, type PingFrame, type StreamCloseFrame, type StreamDataFrame, type StreamId, type StreamOpenFrame
} from '../../schemas/frames.js'
import * as framing from './framing.js'
import type { HandshakeResult, SessionMetrics } from './metrics.js'
import { Stream, type StreamOwner } from './stream.js'

export type SessionState = 'awaiting_hello' | 'authorizing' | 'running' | 'paused' | 'closed'

/**
 * The whole life of a session, as data: awaiting_hello → authorizing → running ⇄ paused → closed.
 * Any state but closed may go to closed.
 */
export const SESSION_TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  awaiting_hello: ['authorizing', 'closed'],
  authorizing: ['running', 'closed'],
  running: ['paused', 'closed'],
  paused: ['running', 'closed'],
  closed: []
}

export interface SessionLimits {
  /** Streams open at once per session (`max_streams`). */
  maxStreams: number
  /** Time a new connection has to send its hello (`hello_timeout`). */
  helloTimeoutMs: number
  /** The upstream of a `stream_open` that names none (`default_upstream`). */
  defaultUpstream: string
  /** Bytes a stream holds for its upstream before it is ready. */
  streamBufferBytes: number
  /** Bytes a paused session holds (both ways together) before it stops reading the client. */
  pausedBufferBytes: number
  /** Client socket `bufferedAmount` above which upstreams stop being read... */
  highWaterBytes: number
  /** ...and below which they are read again. */
  lowWaterBytes: number
}

/** What a session needs from its manager. */
export interface SessionHost {
  readonly limits: SessionLimits
  readonly auth: DeviceAuthenticator
  readonly upstreams: UpstreamRegistry
  readonly metrics: SessionMetrics
  sessionStarted: (session: Session) => void
  sessionEnded: (session: Session) => void
}

export interface SessionStats {
  state: SessionState
  streams: number
  /** The client socket's bufferedAmount now, and the most it reached after any send. */
  bufferedAmount: number
  peakBufferedAmount: number
  /** Bytes the gateway holds for this session: for upstreams not ready or not draining, and a paused session's frames. */
  heldBytes: number
  /** True while the client socket is not read (an upstream is not draining, or a paused session's buffer is full). */
  clientPaused: boolean
  /** True while upstreams are not read (the client is slow, or the session is paused). */
  upstreamsPaused: boolean
  bytesIn: number
  bytesOut: number
}

type Held = { inbound: true, data: RawData, isBinary: boolean, size: number } | { inbound: false, frame: string, size: number, bytes: number }

function closeReason (text: string): string {
  // A close frame's reason is at most 123 bytes.
  return Buffer.byteLength(text) > 123 ? Buffer.from(text).subarray(0, 120).toString('utf8') : text
}

/**
 * One `/ws` connection, from the upgrade to the close: the hello, the session's streams,
 * and backpressure both ways. The state lives in `state`, moved only through SESSION_TRANSITIONS.
 */
export class Session implements StreamOwner {
  readonly id = randomUUID()
  readonly startedAt = Date.now()
  deviceId: string | undefined
  userId: string | undefined
  subscriptionStatus: string | undefined

  private current: SessionState = 'awaiting_hello'
  private log: FastifyBaseLogger
  private readonly streams = new Map<StreamId, Stream>()
  /** Streams whose upstream has not taken the last write: the client is not read while any is here. */
  private readonly blocked = new Set<Stream>()
  /** The client socket is over the high-water mark: upstreams are not read. */
  private clientSlow = false
  private readonly held: Held[] = []
  private heldSize = 0
  private helloTimer: NodeJS.Timeout | undefined
  private peakBuffered = 0
  private bytesIn = 0
  private bytesOut = 0
  private readonly onFlushed = (): void => { this.checkClientDrained() }

  constructor (private readonly socket: WebSocket, private readonly host: SessionHost, log: FastifyBaseLogger) {
    this.log = log.child({ session_id: this.id })
    socket.on('message', (data, isBinary) => this.receive(data, isBinary))
    socket.on('close', (code, reason) => this.finish(code, reason.toString(), 'client'))
    this.helloTimer = setTimeout(() => {
      this.log.info({ event: 'hello_timeout' }, 'no hello in time')
      this.close(CloseCode.POLICY_VIOLATION, 'hello_timeout')
    }, host.limits.helloTimeoutMs)
  }

  get state (): SessionState {
    return this.current
  }

  get streamCount (): number {
    return this.streams.size
  }

  stats (): SessionStats {
    let held = this.heldSize
    for (const stream of this.streams.values()) held += stream.heldBytes
    return {
      state: this.current,
      streams: this.streams.size,
      bufferedAmount: this.socket.bufferedAmount,
      peakBufferedAmount: this.peakBuffered,
      heldBytes: held,
      clientPaused: this.socket.isPaused,
      upstreamsPaused: !this.upstreamsFlowing(),
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut
    }
  }

  /**
   * Stops forwarding both ways: upstreams are not read, and client frames are held in order
   * up to `pausedBufferBytes`, past which the client is not read either. False if not running.
   */
  pause (): boolean {
    if (!this.moveTo('paused')) return false
    this.updateFlow()
    this.log.info({ event: 'session_paused', device_id: this.deviceId }, 'session paused')
    return true
  }

  /** Delivers what was held, in order, and forwards again. False if not paused. */
  resume (): boolean {
    if (!this.moveTo('running')) return false
    this.log.info({ event: 'session_resumed', device_id: this.deviceId }, 'session resumed')
    const held = this.held.splice(0)
    this.heldSize = 0
    for (const item of held) {
      if (this.current !== 'running') break
      if (item.inbound) this.handle(item.data, item.isBinary)
      else this.sendStreamData(item.frame, item.bytes)
    }
    if (this.current === 'running') this.updateFlow()
    return true
  }

  /** Closes the session: every stream is dropped upstream and the client gets `code`. */
  close (code: number, reason: string): void {
    this.finish(code, reason, 'gateway')
  }

  // ---- client → gateway

  private receive (data: RawData, isBinary: boolean): void {
    if (this.current === 'closed') return
    if (this.current === 'paused') {
      this.hold({ inbound: true, data, isBinary, size: Buffer.isBuffer(data) ? data.length : 0 })
      return
    }
    this.handle(data, isBinary)
  }

  private handle (data: RawData, isBinary: boolean): void {
    try {
      const parsed = framing.parseClientFrame(data, isBinary)
      if (!parsed.ok) {
        this.host.metrics.badFrames.inc()
        this.sendError(WsErrorCode.BAD_FRAME, parsed.message, parsed.streamId)
        return
      }
      this.dispatch(parsed.frame)
    } catch (err) {
      // A bug must not take the process or the connection down with it.
      this.log.error({ err, event: 'frame_failed', device_id: this.deviceId }, 'frame handling failed')
      this.sendError(WsErrorCode.INTERNAL_ERROR, 'the gateway could not handle this frame')
    }
  }

  private dispatch (frame: ClientFrame): void {
    if (this.current === 'awaiting_hello') {
      if (frame.type === 'hello') this.authorize(frame).catch((err) => this.log.error({ err }, 'hello failed'))
      else this.sendError(WsErrorCode.NOT_AUTHENTICATED, 'the first frame must be a hello', (frame as { stream_id?: StreamId }).stream_id)
      return
    }
    if (this.current === 'authorizing') {
      const message = frame.type === 'hello' ? 'a hello is already being checked' : 'wait for auth_result before sending frames'
      this.sendError(WsErrorCode.NOT_AUTHENTICATED, message, (frame as { stream_id?: StreamId }).stream_id)
      return
    }
    switch (frame.type) {
      case 'hello': return this.sendError(WsErrorCode.ALREADY_AUTHENTICATED, 'this session is already authenticated')
      case 'stream_open': return this.openStream(frame)
      case 'stream_data': return this.writeStream(frame)
      case 'stream_close': return this.closeStream(frame)
      case 'ping': return this.pong(frame)
    }
  }

  private async authorize (hello: HelloFrame): Promise<void> {
    this.moveTo('authorizing')
    clearTimeout(this.helloTimer)
    this.helloTimer = undefined
    const stopTimer = this.host.metrics.handshakeDuration.startTimer()
    let check: DeviceCheck
    try {
      check = await this.host.auth.validate(hello.device_id, hello.token)
    } catch (err) {
      this.log.error({ err, device_id: hello.device_id }, 'device authenticator threw')
      check = { allowed: false, reason: 'internal_error' }
    }
    const result: HandshakeResult = check.allowed ? 'accepted' : (isCheckFailure(check) ? 'error' : 'rejected')
    this.host.metrics.handshakes.inc({ result })
    stopTimer()
    if (this.current !== 'authorizing') return
    if (!check.allowed) {
      this.log.info({ event: 'handshake_rejected', device_id: hello.device_id, reason: check.reason, result }, 'hello refused')
      this.send(framing.authRefused(check.reason))
      this.close(CloseCode.POLICY_VIOLATION, check.reason)
      return
    }
    this.deviceId = hello.device_id
    this.userId = check.user_id
    this.subscriptionStatus = check.subscription_status
    this.log = this.log.child({ device_id: this.deviceId })
    this.moveTo('running')
    this.host.sessionStarted(this)
    this.send(framing.authAccepted(this.id, check.user_id, check.subscription_status))
    this.log.info({ event: 'session_started', device_id: this.deviceId, user_id: this.userId }, 'session started')
  }

  private openStream (frame: StreamOpenFrame): void {
    const id = frame.stream_id
    if (this.streams.has(id)) return this.sendError(WsErrorCode.STREAM_EXISTS, 'a stream with this id is open', id)
    const name = frame.upstream ?? this.host.limits.defaultUpstream
    const kind = this.host.upstreams.get(name)
    if (kind === undefined) return this.sendError(WsErrorCode.UNKNOWN_UPSTREAM, `no upstream named ${JSON.stringify(name)}`, id)
    if (this.streams.size >= this.host.limits.maxStreams) {
      return this.sendError(WsErrorCode.MAX_STREAMS, `this session already has ${this.host.limits.maxStreams} open streams`, id)
    }

    // Reserved first, so the limit holds however long the upstream takes to connect.
    const stream = new Stream(id, name, this, this.host.limits.streamBufferBytes)
    this.addStream(stream)
    try {
      stream.attach(kind.open({
        target: frame.target,
        sessionId: this.id,
        deviceId: this.deviceId as string,
        userId: this.userId as string,
        streamId: id
      }, stream.events()))
    } catch (err) {
      this.removeStream(stream)
      stream.destroy()
      if (err instanceof UpstreamRefusedError) return this.sendError(WsErrorCode[err.code], err.message, id)
      this.logStreamError(stream, WsErrorCode.UPSTREAM_ERROR, err as Error)
      return this.sendError(WsErrorCode.UPSTREAM_ERROR, 'the upstream could not be opened', id)
    }
    stream.setReading(this.upstreamsFlowing())
  }

  private writeStream (frame: StreamDataFrame): void {
    const stream = this.streams.get(frame.stream_id)
    if (stream === undefined) return this.sendError(WsErrorCode.UNKNOWN_STREAM, 'no open stream with this id', frame.stream_id)
    const bytes = Buffer.from(frame.data, 'base64')
    if (bytes.length === 0) return
    const result = stream.write(bytes)
    if (result === 'overflow') {
      this.host.metrics.streamBufferOverflows.inc()
      const message = `more than ${this.host.limits.streamBufferBytes} bytes before the upstream was ready`
      this.logStreamError(stream, WsErrorCode.STREAM_BUFFER_FULL, new Error(message))
      this.sendError(WsErrorCode.STREAM_BUFFER_FULL, message, stream.id)
      this.endStream(stream, StreamCloseReasons.BUFFER_FULL)
      return
    }
    this.bytesIn += bytes.length
    this.host.metrics.bytesIn.inc(bytes.length)
    if (result === 'blocked') this.streamBlocked(stream)
  }

  private closeStream (frame: StreamCloseFrame): void {
    const stream = this.streams.get(frame.stream_id)
    if (stream === undefined) return this.sendError(WsErrorCode.UNKNOWN_STREAM, 'no open stream with this id', frame.stream_id)
    this.removeStream(stream)
    stream.end()
    this.updateFlow()
  }

  private pong (frame: PingFrame): void {
    const pong = framing.pongFrame(frame)
    if (pong === undefined) return this.sendError(WsErrorCode.BAD_FRAME, 'ping fields cannot be echoed')
    this.send(pong)
  }

  // ---- upstream → gateway (StreamOwner)

  upstreamData (stream: Stream, chunk: Buffer): void {
    if (this.streams.get(stream.id) !== stream) return
    const frame = framing.streamDataFrame(stream.id, chunk)
    if (this.current === 'paused') {
      this.hold({ inbound: false, frame, size: frame.length, bytes: chunk.length })
      return
    }
    this.sendStreamData(frame, chunk.length)
  }

  upstreamEnded (stream: Stream): void {
    this.endStream(stream, StreamCloseReasons.UPSTREAM_CLOSED)
  }

  upstreamFailed (stream: Stream, err: Error): void {
    this.logStreamError(stream, WsErrorCode.UPSTREAM_ERROR, err)
    const code = (err as { code?: string }).code
    this.sendError(WsErrorCode.UPSTREAM_ERROR, `upstream ${stream.upstream} failed${code !== undefined ? `: ${code}` : ''}`, stream.id)
    this.endStream(stream, StreamCloseReasons.UPSTREAM_ERROR)
  }

  streamBlocked (stream: Stream): void {
    if (this.streams.get(stream.id) !== stream || this.blocked.has(stream)) return
    this.blocked.add(stream)
    if (this.blocked.size === 1) this.updateFlow()
  }

  streamDrained (stream: Stream): void {
    if (!this.blocked.delete(stream)) return
    if (this.blocked.size === 0) this.updateFlow()
  }

  // ---- streams

  private addStream (stream: Stream): void {
    this.streams.set(stream.id, stream)
    this.host.metrics.activeStreams.inc()
  }

  private removeStream (stream: Stream): void {
    if (this.streams.get(stream.id) !== stream) return
    this.streams.delete(stream.id)
    this.blocked.delete(stream)
    this.host.metrics.activeStreams.dec()
  }

  /** The gateway ends a stream: the client learns why with a `stream_close`. */
  private endStream (stream: Stream, reason: StreamCloseReason): void {
    this.removeStream(stream)
    stream.destroy()
    this.send(framing.streamCloseFrame(stream.id, reason))
    this.updateFlow()
  }

  private logStreamError (stream: Stream, code: WsErrorCode, err: Error): void {
    this.log.warn({
      event: 'stream_error',
      device_id: this.deviceId,
      stream_id: stream.id,
      upstream: stream.upstream,
      code,
      error: (err as { code?: string }).code ?? err.message
    }, 'stream error')
  }

  // ---- gateway → client and backpressure

  private sendStreamData (frame: string, bytes: number): void {
    this.bytesOut += bytes
    this.host.metrics.bytesOut.inc(bytes)
    this.send(frame)
  }

  private sendError (code: WsErrorCode, message: string, streamId?: StreamId): void {
    this.host.metrics.errorFrames.inc({ code })
    this.send(framing.errorFrame(code, message, streamId))
  }

  private send (frame: string): void {
    if (this.socket.readyState !== WebSocket.OPEN) return
    // Near the mark every send reports its flush, so the last one tells when the client caught up.
    if (this.clientSlow || this.socket.bufferedAmount + frame.length >= this.host.limits.highWaterBytes) {
      this.socket.send(frame, this.onFlushed)
    } else {
      this.socket.send(frame)
    }
    const buffered = this.socket.bufferedAmount
    if (buffered > this.peakBuffered) this.peakBuffered = buffered
    if (!this.clientSlow && buffered >= this.host.limits.highWaterBytes) {
      this.clientSlow = true
      this.updateFlow()
    }
  }

  private checkClientDrained (): void {
    if (!this.clientSlow || this.current === 'closed') return
    if (this.socket.bufferedAmount > this.host.limits.lowWaterBytes) return
    this.clientSlow = false
    this.updateFlow()
  }

  private upstreamsFlowing (): boolean {
    return this.current === 'running' && !this.clientSlow
  }

  /** Applies the flow the state asks for: who is read and who is not. */
  private updateFlow (): void {
    if (this.current === 'closed') return
    const upstreams = this.upstreamsFlowing()
    for (const stream of this.streams.values()) stream.setReading(upstreams)
    const client = this.blocked.size === 0 && (this.current !== 'paused' || this.heldSize < this.host.limits.pausedBufferBytes)
    if (client && this.socket.isPaused) this.socket.resume()
    else if (!client && !this.socket.isPaused) this.socket.pause()
  }

  private hold (item: Held): void {
    this.held.push(item)
    this.heldSize += item.size
    // Backpressure, not loss: past the bound the client socket is no longer read.
    if (this.heldSize >= this.host.limits.pausedBufferBytes && !this.socket.isPaused) this.updateFlow()
  }

  // ---- the end

  private finish (code: number, reason: string, by: 'client' | 'gateway'): void {
    const was = this.current
    if (!this.moveTo('closed')) return
    clearTimeout(this.helloTimer)
    this.helloTimer = undefined
    for (const stream of [...this.streams.values()]) {
      this.removeStream(stream)
      stream.destroy()
    }
    this.held.length = 0
    this.heldSize = 0
    if (by === 'gateway' && this.socket.readyState === WebSocket.OPEN) {
      try {
        this.socket.close(code, closeReason(reason))
      } catch {
        // A code that may not be sent (1005, 1006, ...): the peer gets no close frame then.
        this.socket.terminate()
      }
    }
    this.host.sessionEnded(this)
    if (was === 'running' || was === 'paused') {
      this.log.info({
        event: 'session_ended',
        device_id: this.deviceId,
        code,
        reason,
        closed_by: by,
        bytes_in: this.bytesIn,
        bytes_out: this.bytesOut,
        duration_ms: Date.now() - this.startedAt
      }, 'session ended')
    } else {
      this.log.debug({ event: 'connection_ended', state: was, code, closed_by: by }, 'connection ended before a session started')
    }
  }

  private moveTo (next: SessionState): boolean {
    if (!SESSION_TRANSITIONS[this.current].includes(next)) return false
    this.current = next
    return true
  }
}
