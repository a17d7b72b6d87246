import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import type { Counter } from 'prom-client'
import WebSocket, { type RawData } from 'ws'
import { CloseCode, WsErrorCode } from '../errors.js'
import { Opcode, unmaskedFrameStart } from '../ws-frames.js'
import { NoCredentialError, type Authenticator, type RefreshResult } from '../auth/index.js'
import type { AuthResult, Principal, ReauthResult, TokenPair } from '../auth/principal.js'
import {
  canTransition, CONNECTION_STATES, TRANSITIONS,
  type Connection, type ConnectionControls, type ConnectionRegistry, type ConnectionState
} from '../registry.js'
import type { UpstreamRegistry } from '../upstreams/index.js'
import { UpstreamRefusedError } from '../upstreams/types.js'
import {
  SessionCloseReasons, StreamCloseReasons, type StreamCloseReason,
  type AuthRefreshFrame, type AuthRefreshRequiredFrame, type ClientFrame, type HelloFrame, type PingFrame,
  type StreamCloseFrame, type StreamId, type StreamOpenFrame
} from '../../schemas/frames.js'
import { UNSCHEDULED, type Deadlines, type Timed } from './deadlines.js'
import * as framing from './framing.js'
import type { HandshakeResult, SessionMetrics } from './metrics.js'
import { Stream, type StreamOwner } from './stream.js'

/**
 * A session's state is its registry entry's state (lib/registry.ts `TRANSITIONS`, the one
 * state machine): initial → authorizing → running ⇄ paused, running → refreshing → running,
 * any → stopping → closed.
 */
/** Bytes queued to a client, in high-water marks, past which it is dropped. */
const HARD_CAP_FACTOR = 8

export type SessionState = ConnectionState

/** The lifecycle as a client sees it: the registry's states without the gateway's inner steps. */
export type SessionPhase = 'awaiting_hello' | 'authorizing' | 'running' | 'paused' | 'closed'

export const SESSION_PHASES: Readonly<Record<ConnectionState, SessionPhase>> = {
  initial: 'awaiting_hello',
  authorizing: 'authorizing',
  running: 'running',
  // Streams keep flowing while the credential is re-checked.
  refreshing: 'running',
  paused: 'paused',
  stopping: 'closed',
  closed: 'closed'
}

/**
 * `TRANSITIONS` seen through `SESSION_PHASES`: awaiting_hello → authorizing → running ⇄ paused
 * → closed. Derived, never edited: the registry's table is the only one that is maintained.
 */
export const SESSION_TRANSITIONS: Readonly<Record<SessionPhase, readonly SessionPhase[]>> = (() => {
  const table: Record<SessionPhase, SessionPhase[]> = { awaiting_hello: [], authorizing: [], running: [], paused: [], closed: [] }
  for (const from of CONNECTION_STATES) {
    const phase = SESSION_PHASES[from]
    for (const to of TRANSITIONS[from]) {
      const next = SESSION_PHASES[to]
      if (next !== phase && !table[phase].includes(next)) table[phase].push(next)
    }
  }
  return table
})()

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
  /** Lifetime of the session's authorization before it is re-checked (`access_token_ttl`). */
  accessTtlMs: number
  /** Time the client has to send `auth_refresh` when only it can renew the credential (`jwt_refresh_grace`). */
  jwtRefreshGraceMs: number
  /** Client socket `bufferedAmount` above which upstreams stop being read... */
  highWaterBytes: number
  /** ...and below which they are read again. */
  lowWaterBytes: number
}

/** What a session needs from its manager. */
export interface SessionHost {
  readonly limits: SessionLimits
  readonly authenticator: Authenticator
  readonly connections: ConnectionRegistry
  readonly upstreams: UpstreamRegistry
  readonly metrics: SessionMetrics
  /** `httvps_gateway_token_refresh_total{result}` (plugins/auth.ts). */
  readonly tokenRefreshes: Counter<'result'>
  /** Every session's one timer (hello timeout, expiry, refresh grace), on one Node timer. */
  readonly deadlines: Deadlines<Session>
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

type Held = { inbound: true, data: RawData, isBinary: boolean, size: number } | { inbound: false, frame: Buffer, binary: boolean, size: number, bytes: number }

/** Where a socket came from. */
export interface SessionOrigin {
  log: FastifyBaseLogger
  remoteAddress: string
  /**
   * The socket under the WebSocket (the upgrade request's), onto which binary `stream_data`
   * is framed directly (Session#sendBinaryStreamData). Without it they go through `ws` whole.
   */
  transport?: Duplex
}

/** A re-check that could not be made is tried again after this long (at most the token lifetime). */
const REAUTH_RETRY_MS = 30_000

/** What the session's one deadline is for. */
const enum Timer {
  None,
  /** No hello yet: the connection is closed. */
  Hello,
  /** The authorization is to be re-checked (also a re-check tried again). */
  Expiry,
  /** The client was asked for an `auth_refresh` and did not send one. */
  RefreshGrace
}

type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/** JSON frames, sent as text messages (`stream_data` frames are built as bytes). */
const TEXT = { binary: false } as const
/** Binary `stream_data` messages of a stream opened with `binary: true`. */
const BINARY = { binary: true } as const

/** The session a socket belongs to, so that its listeners are shared functions and not closures per socket. */
const kSession = Symbol('session')
type SessionSocket = WebSocket & { [kSession]?: Session }

/** No lone UTF-16 surrogate (String.prototype.isWellFormed, which ES2022's types do not declare). */
function isWellFormed (text: string): boolean {
  return (text as string & { isWellFormed: () => boolean }).isWellFormed()
}

function messageSize (data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0)
  return data.byteLength
}

/** The words of a refused hello: the device check's own reason, otherwise no detail about the credential. */
function refusalReason (hello: HelloFrame, result: Extract<AuthResult, { ok: false }>): string {
  if (hello.token !== undefined || result.code === 'AUTH_UNAVAILABLE') return result.reason
  return result.code === 'TOKEN_EXPIRED' ? 'token_expired' : 'invalid_credentials'
}

/** A refresh may renew the session's own identity only. */
function sameIdentity (a: Principal, b: Principal): boolean {
  return a.user_id === b.user_id && a.device_id === b.device_id && a.method === b.method
}

/**
 * Makes V8 keep `text` as one flat string, in place: `randomUUID()` builds its result from about
 * twenty concatenations, kept as a tree of about 480 bytes for as long as the string lives; once
 * a character is read the tree is replaced by one 36-character string (about 60 bytes). For ids
 * that live as long as a connection. Returns `text`, whose value never changes.
 */
export function compactString (text: string): string {
  if (text.length > 0) text.charCodeAt(0)
  return text
}

function closeReason (text: string): string {
  // A close frame's reason is at most 123 bytes.
  return Buffer.byteLength(text) > 123 ? Buffer.from(text).subarray(0, 120).toString('utf8') : text
}

/**
 * One `/ws` connection, from the upgrade to the close: the hello, the session's streams,
 * its authorization over time, and backpressure both ways. Its state is its registry
 * entry's (`connection`), moved only through the registry's `TRANSITIONS`.
 */
export class Session implements StreamOwner, Timed {
  /** The session id, which is also its connection id in the registry (admin API). */
  readonly id: string
  readonly connection: Connection
  /** Who the session belongs to, as the authenticator returned it (needed as is for re-checks). */
  principal: Principal | undefined
  /** Owned by `host.deadlines`. */
  deadlineSlot = UNSCHEDULED

  // An idle session is most of what a gateway holds, so it holds little: no logger, map, set,
  // buffer or closure of its own until something needs one (logging, streams, backpressure,
  // a pause), and its timer is an entry in the host's `deadlines`.

  /** The connection's logger (the request's): lines carry the session's fields (`logAt`), no child logger is kept. */
  private readonly log: FastifyBaseLogger
  private streams: Map<StreamId, Stream> | undefined
  /** Streams whose upstream has not taken the last write: the client is not read while any is here. */
  private blocked: Set<Stream> | undefined
  /** The client socket is over the high-water mark: upstreams are not read. */
  private clientSlow = false
  /** A paused session's frames, both ways, in order. */
  private held: Held[] | undefined
  private heldSize = 0
  /** What the session's one deadline is for: the hello timeout, then the authorization's expiry or the refresh grace. */
  private timer = Timer.None
  /** Epoch ms when the authorization is to be re-checked. */
  private expiresAt: number | undefined
  private peakBuffered = 0
  private bytesIn = 0
  private bytesOut = 0
  /** Made when the client first falls behind. */
  private onFlushed: (() => void) | undefined
  /** Where binary `stream_data` is written directly (sendBinaryStreamData); undefined: through `ws`. */
  private readonly transport: Duplex | undefined

  constructor (private readonly socket: WebSocket, private readonly host: SessionHost, origin: SessionOrigin) {
    this.connection = host.connections.open({ kind: 'session', route: '/ws', remoteAddress: origin.remoteAddress })
    // Shared with the registry entry, so compacted for both.
    this.id = compactString(this.connection.id)
    this.connection.attach(new Session.Controls(this))
    this.log = origin.log
    // Extensions are settled by the handshake, which is over: decided once, not per message.
    this.transport = socket.extensions === '' ? origin.transport : undefined
    ;(socket as SessionSocket)[kSession] = this
    socket.on('message', Session.onSocketMessage)
    socket.on('close', Session.onSocketClose)
    this.setTimer(host.limits.helloTimeoutMs, Timer.Hello)
  }

  /**
   * What the registry (admin API) may do with the session: one small object, and each control
   * a function made when it is asked for (the registry may call it detached), not four closures
   * per session.
   */
  private static readonly Controls = class implements ConnectionControls {
    constructor (private readonly session: Session) {}
    get pause (): () => void {
      const session = this.session
      return () => session.holdTraffic()
    }

    get resume (): () => void {
      const session = this.session
      return () => session.releaseTraffic()
    }

    get stop (): (code: number, reason: string) => void {
      const session = this.session
      return (code, reason) => session.close(code, reason)
    }

    get reauthorize (): () => Promise<ReauthResult> {
      const session = this.session
      return async () => await session.recheck()
    }
  }

  private static onSocketMessage (this: SessionSocket, data: RawData, isBinary: boolean): void {
    this[kSession]?.receive(data, isBinary)
  }

  private static onSocketClose (this: SessionSocket, code: number, reason: Buffer): void {
    this[kSession]?.finish(code, reason.toString(), 'client')
  }

  get startedAt (): number {
    return this.connection.createdAt
  }

  get deviceId (): string | undefined {
    return this.principal?.device_id
  }

  get userId (): string | undefined {
    return this.principal?.user_id
  }

  get subscriptionStatus (): string | undefined {
    return this.principal?.subscription_status
  }

  /**
   * One log line with `session_id` first, and `device_id` once authorized: the fields a child
   * logger would bind, without a child logger kept per session (nor the line built when its
   * level is off).
   */
  private logAt (level: LogLevel, fields: Record<string, unknown>, message: string): void {
    const log = this.log as FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }
    if (log.isLevelEnabled?.(level) === false) return
    const line = this.principal === undefined ? { session_id: this.id } : { session_id: this.id, device_id: this.deviceId }
    log[level](Object.assign(line, fields), message)
  }

  get state (): SessionState {
    return this.connection.state
  }

  get streamCount (): number {
    return this.streams?.size ?? 0
  }

  stats (): SessionStats {
    let held = this.heldSize
    if (this.streams !== undefined) for (const stream of this.streams.values()) held += stream.heldBytes
    return {
      state: this.state,
      streams: this.streamCount,
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
   * The admin API gets here through the registry (`controls.pause`).
   */
  pause (): boolean {
    if (!this.moveTo('paused')) return false
    this.holdTraffic()
    return true
  }

  /** Delivers what was held, in order, and forwards again. False if not paused. */
  resume (): boolean {
    if (this.state !== 'paused' || !this.moveTo('running')) return false
    this.releaseTraffic()
    return true
  }

  /** Closes the session: every stream is dropped upstream and the client gets `code`. */
  close (code: number, reason: string): void {
    this.finish(code, reason, 'gateway')
  }

  // ---- client → gateway

  private receive (data: RawData, isBinary: boolean): void {
    if (this.ended()) return
    this.connection.countIn(messageSize(data))
    if (this.state === 'paused') {
      this.hold({ inbound: true, data, isBinary, size: Buffer.isBuffer(data) ? data.length : 0 })
      return
    }
    this.handle(data, isBinary)
  }

  private handle (data: RawData, isBinary: boolean): void {
    try {
      const parsed = framing.parseClientFrame(data, isBinary)
      if (!parsed.ok) {
        this.sendError(WsErrorCode.BAD_FRAME, parsed.message, parsed.streamId)
        return
      }
      this.dispatch(parsed.frame, parsed.bytes)
    } catch (err) {
      // A bug must not take the process or the connection down with it.
      this.logAt('error', { err, event: 'frame_failed', device_id: this.deviceId }, 'frame handling failed')
      this.sendError(WsErrorCode.INTERNAL_ERROR, 'the gateway could not handle this frame')
    }
  }

  /** `bytes`: a `stream_data` frame's payload, decoded while it was checked. */
  private dispatch (frame: ClientFrame, bytes: Buffer | undefined): void {
    if (this.state === 'initial') {
      if (frame.type === 'hello') this.authorize(frame).catch((err) => this.logAt('error', { err }, 'hello failed'))
      else this.sendError(WsErrorCode.NOT_AUTHENTICATED, 'the first frame must be a hello', (frame as { stream_id?: StreamId }).stream_id)
      return
    }
    if (this.state === 'authorizing') {
      const message = frame.type === 'hello' ? 'a hello is already being checked' : 'wait for auth_result before sending frames'
      this.sendError(WsErrorCode.NOT_AUTHENTICATED, message, (frame as { stream_id?: StreamId }).stream_id)
      return
    }
    switch (frame.type) {
      case 'hello': return this.sendError(WsErrorCode.ALREADY_AUTHENTICATED, 'this session is already authenticated')
      case 'auth_refresh':
        this.refresh(frame).catch((err) => this.logAt('error', { err }, 'auth_refresh failed'))
        return
      case 'stream_open': return this.openStream(frame)
      case 'stream_data': return this.writeStream(frame.stream_id, bytes as Buffer)
      case 'stream_close': return this.closeStream(frame)
      case 'ping': return this.pong(frame)
    }
  }

  private async authorize (hello: HelloFrame): Promise<void> {
    this.moveTo('authorizing')
    this.clearTimer()
    const stopTimer = this.host.metrics.handshakeDuration.startTimer()
    let result: AuthResult
    try {
      result = await this.host.authenticator.authenticateHello(hello)
    } catch (err) {
      this.logAt('error', { err, device_id: hello.device_id }, 'authenticator threw')
      result = { ok: false, code: 'AUTH_UNAVAILABLE', reason: 'internal_error' }
    }
    const handshake: HandshakeResult = result.ok ? 'accepted' : (result.code === 'AUTH_UNAVAILABLE' ? 'error' : 'rejected')
    this.host.metrics.handshakes.inc({ result: handshake })
    stopTimer()
    if (this.state !== 'authorizing') return
    if (!result.ok) {
      const reason = refusalReason(hello, result)
      this.logAt('info', { event: 'handshake_rejected', device_id: hello.device_id, reason, result: handshake }, 'hello refused')
      this.send(framing.authRefused(reason))
      this.close(CloseCode.POLICY_VIOLATION, reason)
      return
    }
    const principal = result.principal
    const tokens = this.issueTokens(principal)
    this.setPrincipal(principal)
    this.moveTo('running')
    this.host.sessionStarted(this)
    this.send(framing.authAccepted(this.id, principal, tokens))
    this.logAt('info', { event: 'session_started', device_id: this.deviceId, user_id: this.userId, method: principal.method }, 'session started')
    // A hello with a token lasts no longer than the token.
    this.scheduleExpiry(Math.min(Date.now() + this.host.limits.accessTtlMs, principal.expires_at ?? Infinity))
  }

  /** `auth_refresh`: a new token pair for the same identity, without reconnecting. */
  private async refresh (frame: AuthRefreshFrame): Promise<void> {
    let result: RefreshResult
    try {
      result = await this.host.authenticator.refreshTokens(frame.refresh_token)
    } catch (err) {
      this.logAt('error', { err, event: 'auth_refresh_failed' }, 'refresh failed')
      if (!this.ended()) this.sendError(WsErrorCode.INTERNAL_ERROR, 'auth_refresh: the gateway could not refresh')
      return
    }
    if (this.ended()) return
    if (!result.ok) {
      this.logAt('info', { event: 'auth_refresh_refused', code: result.code, reason: result.reason }, 'auth_refresh refused')
      this.sendError(WsErrorCode[result.code], `auth_refresh: ${result.reason}`)
      return
    }
    if (!sameIdentity(this.principal as Principal, result.principal)) {
      this.logAt('warn', { event: 'auth_refresh_refused', code: WsErrorCode.INVALID_REFRESH_TOKEN, reason: 'another identity' }, 'auth_refresh for another identity')
      this.sendError(WsErrorCode.INVALID_REFRESH_TOKEN, 'auth_refresh: the refresh token belongs to another identity')
      return
    }
    this.renew(result.principal, result.tokens, 'auth_refresh')
  }

  private openStream (frame: StreamOpenFrame): void {
    const id = frame.stream_id
    if (this.streams?.has(id) === true) return this.sendError(WsErrorCode.STREAM_EXISTS, 'a stream with this id is open', id)
    // A lone surrogate has no UTF-8 form: the client could not tell its binary frames from another stream's.
    if (frame.binary === true && typeof id === 'string' && !isWellFormed(id)) {
      return this.sendError(WsErrorCode.BAD_FRAME, 'stream_open: a stream with binary: true needs a stream_id that is valid Unicode (no lone surrogates)', id)
    }
    const name = frame.upstream ?? this.host.limits.defaultUpstream
    const kind = this.host.upstreams.get(name)
    if (kind === undefined) return this.sendError(WsErrorCode.UNKNOWN_UPSTREAM, `no upstream named ${JSON.stringify(name)}`, id)
    if (this.streamCount >= this.host.limits.maxStreams) {
      return this.sendError(WsErrorCode.MAX_STREAMS, `this session already has ${this.host.limits.maxStreams} open streams`, id)
    }

    // Reserved first, so the limit holds however long the upstream takes to connect.
    const stream = new Stream(id, name, this, this.host.limits.streamBufferBytes, frame.binary === true)
    this.addStream(stream)
    try {
      stream.attach(kind.open({
        target: frame.target,
        sessionId: this.id,
        deviceId: this.deviceId,
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

  /** `bytes`: the payload of a JSON or a binary `stream_data`, either way. */
  private writeStream (id: StreamId, bytes: Buffer): void {
    const stream = this.streams?.get(id)
    if (stream === undefined) return this.sendError(WsErrorCode.UNKNOWN_STREAM, 'no open stream with this id', id)
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
    const stream = this.streams?.get(frame.stream_id)
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
    if (this.streams?.get(stream.id) !== stream) return
    const paused = this.state === 'paused'
    if (stream.binary && !paused) return this.sendBinaryStreamData(stream.dataHead, chunk)
    const frame = stream.binary ? framing.binaryStreamDataFrame(stream.dataHead, chunk) : framing.streamDataFrame(stream.dataHead, chunk)
    if (paused) {
      this.hold({ inbound: false, frame, binary: stream.binary, size: frame.length, bytes: chunk.length })
      return
    }
    this.sendStreamData(frame, false, chunk.length)
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
    if (this.streams?.get(stream.id) !== stream) return
    this.blocked ??= new Set()
    if (this.blocked.has(stream)) return
    this.blocked.add(stream)
    if (this.blocked.size === 1) this.updateFlow()
  }

  streamDrained (stream: Stream): void {
    if (this.blocked?.delete(stream) !== true) return
    if (this.blocked.size === 0) this.updateFlow()
  }

  // ---- streams

  private addStream (stream: Stream): void {
    this.streams ??= new Map()
    this.streams.set(stream.id, stream)
    this.host.metrics.activeStreams.inc()
    this.connection.setOpenStreams(this.streams.size)
  }

  private removeStream (stream: Stream): void {
    const streams = this.streams
    if (streams?.get(stream.id) !== stream) return
    streams.delete(stream.id)
    this.blocked?.delete(stream)
    this.host.metrics.activeStreams.dec()
    this.connection.setOpenStreams(streams.size)
    // Back to an idle session's size when the last stream goes.
    if (streams.size === 0) this.streams = undefined
  }

  /** The gateway ends a stream: the client learns why with a `stream_close`. */
  private endStream (stream: Stream, reason: StreamCloseReason): void {
    this.removeStream(stream)
    stream.destroy()
    this.send(framing.streamCloseFrame(stream.id, reason))
    this.updateFlow()
  }

  private logStreamError (stream: Stream, code: WsErrorCode, err: Error): void {
    this.logAt('warn', {
      event: 'stream_error',
      device_id: this.deviceId,
      stream_id: stream.id,
      upstream: stream.upstream,
      code,
      error: (err as { code?: string }).code ?? err.message
    }, 'stream error')
  }

  // ---- gateway → client and backpressure

  private sendStreamData (frame: Buffer, binary: boolean, bytes: number): void {
    this.countStreamOut(bytes)
    this.send(frame, binary)
  }

  /**
   * A binary `stream_data` framed straight onto the client's socket: the WebSocket frame header
   * and the stream's head in one small buffer, then the upstream's chunk as it came, in one
   * `writev`. Handing `ws` one message would first copy both into a new buffer per message:
   * 14% of the gateway's busy time with binary streams in the profile (BENCHMARKS.md). The
   * frames stay in order with the ones `ws` writes because `ws` writes each frame at once as it
   * is given, unless it has one to compress (no extension is negotiated: the gateway offers none,
   * and the constructor checks) or a Blob to read (the gateway sends none); and no frame is cut
   * in two, because the gateway never sends a message in fragments through `ws` and nothing
   * else writes to the socket.
   */
  private sendBinaryStreamData (head: Buffer, chunk: Buffer): void {
    const transport = this.transport
    if (transport === undefined) {
      this.sendStreamData(framing.binaryStreamDataFrame(head, chunk), true, chunk.length)
      return
    }
    this.countStreamOut(chunk.length)
    if (this.socket.readyState !== WebSocket.OPEN) return
    const length = head.length + chunk.length
    this.connection.countOut(length)
    const flushed = this.flushCallback(length)
    transport.cork()
    transport.write(unmaskedFrameStart(Opcode.BINARY, head, length))
    transport.write(chunk, flushed)
    transport.uncork()
    this.checkBuffered()
  }

  private countStreamOut (bytes: number): void {
    this.bytesOut += bytes
    this.host.metrics.bytesOut.inc(bytes)
  }

  private sendError (code: WsErrorCode, message: string, streamId?: StreamId): void {
    this.host.metrics.errorFrames.inc({ code })
    // Every refused frame, whether parsing or the frame's handling found it bad.
    if (code === WsErrorCode.BAD_FRAME) this.host.metrics.badFrames.inc()
    this.send(framing.errorFrame(code, message, streamId))
  }

  /** Sends one frame: JSON text, the UTF-8 bytes of one (sent as a text message all the same), or a binary `stream_data`. */
  private send (frame: string | Buffer, binary = false): void {
    if (this.socket.readyState !== WebSocket.OPEN) return
    const size = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length
    this.connection.countOut(size)
    this.socket.send(frame, binary ? BINARY : TEXT, this.flushCallback(size))
    this.checkBuffered()
  }

  /** Near the mark every send reports its flush, so the last one tells when the client caught up. */
  private flushCallback (size: number): (() => void) | undefined {
    if (!this.clientSlow && this.socket.bufferedAmount + size < this.host.limits.highWaterBytes) return undefined
    return (this.onFlushed ??= () => { this.checkClientDrained() })
  }

  /** After a send: the peak, the hard cap, and whether the client is now too slow to feed. */
  private checkBuffered (): void {
    const buffered = this.socket.bufferedAmount
    if (buffered > this.peakBuffered) this.peakBuffered = buffered
    // The last bound: replies to frames read before the client was paused can still pile up; past
    // this a client that reads nothing is cut (a close frame would wait behind what it does not read).
    if (buffered > this.host.limits.highWaterBytes * HARD_CAP_FACTOR) {
      this.logAt('warn', { buffered }, 'client not reading: connection dropped')
      this.socket.terminate()
      return
    }
    if (!this.clientSlow && buffered >= this.host.limits.highWaterBytes) {
      this.clientSlow = true
      this.updateFlow()
    }
  }

  private checkClientDrained (): void {
    if (!this.clientSlow || this.ended()) return
    if (this.socket.bufferedAmount > this.host.limits.lowWaterBytes) return
    this.clientSlow = false
    this.updateFlow()
  }

  private upstreamsFlowing (): boolean {
    return this.live() && !this.clientSlow
  }

  /** Applies the flow the state asks for: who is read and who is not. */
  private updateFlow (): void {
    if (this.ended()) return
    const upstreams = this.upstreamsFlowing()
    if (this.streams !== undefined) for (const stream of this.streams.values()) stream.setReading(upstreams)
    // A client that does not read what it is sent is not read either: its frames (pings, junk) would only add replies.
    const client = !this.clientSlow && (this.blocked?.size ?? 0) === 0 && (this.state !== 'paused' || this.heldSize < this.host.limits.pausedBufferBytes)
    if (client && this.socket.isPaused) this.socket.resume()
    else if (!client && !this.socket.isPaused) this.socket.pause()
  }

  private hold (item: Held): void {
    this.held ??= []
    this.held.push(item)
    this.heldSize += item.size
    // Backpressure, not loss: past the bound the client socket is no longer read.
    if (this.heldSize >= this.host.limits.pausedBufferBytes && !this.socket.isPaused) this.updateFlow()
  }

  // ---- authorization over time

  private setPrincipal (principal: Principal): void {
    this.principal = principal
    this.connection.authorize(principal)
  }

  /** A new pair for a principal from a device, API key or external JWT; none for one from a gateway access token. */
  private issueTokens (principal: Principal): TokenPair | undefined {
    try {
      return this.host.authenticator.issueTokens(principal)
    } catch (err) {
      // A session opened with a gateway access token renews it with auth_refresh (docs/protocol.md).
      if (!(err instanceof NoCredentialError)) this.logAt('error', { err }, 'could not issue tokens')
      return undefined
    }
  }

  private scheduleExpiry (at: number): void {
    this.expiresAt = at
    this.setTimer(at - Date.now(), Timer.Expiry)
  }

  private expired (): void {
    const at = this.expiresAt as number
    if (Date.now() < at) return this.scheduleExpiry(at)
    // Paused: the re-check runs at resume, when the client's frames (an auth_refresh) are read again.
    if (this.state !== 'running') return
    this.reauthorizeOnExpiry().catch((err) => this.logAt('error', { err }, 're-authorization failed'))
  }

  /** The authorization expired: re-checked by its original method while the streams go on. */
  private async reauthorizeOnExpiry (): Promise<void> {
    if (!this.moveTo('refreshing')) return
    let result: ReauthResult
    try {
      result = await this.host.authenticator.reauthorize(this.principal as Principal)
    } catch (err) {
      // No verdict (the backend cannot be asked): keep the session, try again later.
      this.host.tokenRefreshes.inc({ result: 'error' })
      this.logAt('warn', { err, event: 'reauthorization_failed' }, 'session could not be re-authorized; it goes on')
      if (this.state !== 'refreshing') return
      this.moveTo('running')
      this.setTimer(Math.min(REAUTH_RETRY_MS, this.host.limits.accessTtlMs), Timer.Expiry)
      return
    }
    // Closed meanwhile, or an auth_refresh renewed the session first.
    if (this.state !== 'refreshing') return
    if (result.status === 'allowed') {
      this.host.tokenRefreshes.inc({ result: 'ok' })
      // Within the session's login: no new refresh family per re-check (the client keeps its refresh token).
      this.renew(result.principal, this.host.authenticator.renewAccess(result.principal) ?? this.issueTokens(result.principal), 'expiry')
    } else if (result.status === 'refused') {
      this.host.tokenRefreshes.inc({ result: 'refused' })
      this.revoke(result.reason)
    } else {
      this.requireRefresh('expired')
    }
  }

  /** `controls.reauthorize` (`POST /admin/auth/invalidate`): a re-check now, acted on here. */
  private async recheck (): Promise<ReauthResult> {
    if (this.principal === undefined) return { status: 'refresh_required', reason: 'not authenticated yet' }
    const result = await this.host.authenticator.reauthorize(this.principal)
    if (this.ended()) return result
    if (result.status === 'allowed') this.setPrincipal(result.principal)
    else if (result.status === 'refused') this.revoke(result.reason)
    else this.requireRefresh('invalidated')
    return result
  }

  /** Only the client can renew the credential (a JWT): an auth_refresh within the grace period, or the session ends. */
  private requireRefresh (reason: AuthRefreshRequiredFrame['reason']): void {
    if (this.state === 'paused') {
      this.expiresAt = Date.now()
      return
    }
    if (this.state === 'running') this.moveTo('refreshing')
    if (this.state !== 'refreshing') return
    const grace = this.host.limits.jwtRefreshGraceMs
    this.send(framing.authRefreshRequired(reason, grace))
    this.logAt('info', { event: 'auth_refresh_required', reason, grace_ms: grace }, 'the client must refresh')
    this.setTimer(grace, Timer.RefreshGrace)
  }

  /** Still authorized: the client gets a fresh auth_result and the session goes on untouched. */
  private renew (principal: Principal, tokens: framing.IssuedTokens | undefined, by: 'expiry' | 'auth_refresh'): void {
    this.setPrincipal(principal)
    if (this.state === 'refreshing') this.moveTo('running')
    this.send(framing.authAccepted(this.id, principal, tokens))
    this.scheduleExpiry(Date.now() + this.host.limits.accessTtlMs)
    this.logAt('info', { event: 'session_reauthorized', by, user_id: this.userId }, 'session re-authorized')
  }

  private revoke (reason: string): void {
    this.logAt('info', { event: 'session_revoked', reason }, 'session authorization revoked')
    this.close(CloseCode.POLICY_VIOLATION, SessionCloseReasons.AUTH_REVOKED)
  }

  // ---- pause and resume (directly or through the registry)

  private holdTraffic (): void {
    this.updateFlow()
    this.logAt('info', { event: 'session_paused', device_id: this.deviceId }, 'session paused')
  }

  private releaseTraffic (): void {
    this.logAt('info', { event: 'session_resumed', device_id: this.deviceId }, 'session resumed')
    const held = this.held ?? []
    this.held = undefined
    this.heldSize = 0
    for (const item of held) {
      if (!this.live()) break
      if (item.inbound) this.handle(item.data, item.isBinary)
      else this.sendStreamData(item.frame, item.binary, item.bytes)
    }
    if (!this.live()) return
    this.updateFlow()
    if (this.state === 'running' && this.expiresAt !== undefined && this.expiresAt <= Date.now()) this.expired()
  }

  // ---- the end

  private finish (code: number, reason: string, by: 'client' | 'gateway'): void {
    const was = this.state
    if (was === 'closed') return
    // → stopping → closed (an admin stop is in stopping already): the session leaves the registry.
    this.connection.close()
    this.clearTimer()
    if (this.streams !== undefined) {
      for (const stream of [...this.streams.values()]) {
        this.removeStream(stream)
        stream.destroy()
      }
    }
    this.held = undefined
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
    if (this.principal !== undefined) {
      this.logAt('info', {
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
      this.logAt('debug', { event: 'connection_ended', state: was, code, closed_by: by }, 'connection ended before a session started')
    }
  }

  /** Moves the registry entry when `TRANSITIONS` allows it; false (and nothing changes) otherwise. */
  private moveTo (next: SessionState): boolean {
    if (!canTransition(this.state, next)) return false
    this.connection.transition(next)
    return true
  }

  /** Forwarding: running, or running while the credential is re-checked. */
  private live (): boolean {
    return this.state === 'running' || this.state === 'refreshing'
  }

  private ended (): boolean {
    return this.state === 'stopping' || this.state === 'closed'
  }

  // ---- the session's one timer

  private setTimer (ms: number, timer: Timer): void {
    this.timer = timer
    this.host.deadlines.set(this, ms)
  }

  private clearTimer (): void {
    this.timer = Timer.None
    this.host.deadlines.clear(this)
  }

  /** `host.deadlines`: the deadline set last passed. */
  deadlinePassed (): void {
    const timer = this.timer
    this.timer = Timer.None
    try {
      switch (timer) {
        case Timer.Hello:
          this.logAt('info', { event: 'hello_timeout' }, 'no hello in time')
          this.close(CloseCode.POLICY_VIOLATION, 'hello_timeout')
          return
        case Timer.Expiry:
          this.expired()
          return
        case Timer.RefreshGrace:
          this.host.tokenRefreshes.inc({ result: 'expired' })
          this.logAt('info', { event: 'session_expired' }, 'no auth_refresh in time')
          this.close(CloseCode.POLICY_VIOLATION, SessionCloseReasons.AUTH_EXPIRED)
      }
    } catch (err) {
      // One session's bug must not stop the other sessions' deadlines.
      this.logAt('error', { err, event: 'timer_failed' }, 'session timer failed')
    }
  }
}
