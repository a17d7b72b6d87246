import type { StreamId } from '../../schemas/frames.js'

/** What a stream asks of an upstream when it opens. */
export interface OpenRequest {
  /** `host:port` for upstreams that connect somewhere (tcp); others refuse or ignore it. */
  target?: string
  sessionId: string
  /** Absent for sessions without a device (API key, or a JWT without a `device_id` claim). */
  deviceId?: string
  userId: string
  streamId: StreamId
}

/**
 * How an upstream connection reports back to its stream. An upstream never calls these
 * synchronously from `open`, and never after `destroy`.
 */
export interface UpstreamEvents {
  /** Connected: writes now go through (writes before this are held by the stream). */
  ready: () => void
  /** Bytes for the client. */
  data: (chunk: Buffer) => void
  /** A `write` that returned false has been taken; writing may go on. */
  drain: () => void
  /** The upstream ended its side normally; no more data will come. */
  end: () => void
  /** The upstream failed (connect refused, reset, ...); no more data will come. */
  error: (err: Error) => void
}

/** One byte stream through an upstream. */
export interface UpstreamConnection {
  /** Returns false when the caller should stop writing until `drain`; the bytes are kept anyway. */
  write: (chunk: Buffer) => boolean
  /**
   * The client is done: finish writing what was written, then let go. No events after this.
   * May come before `ready`, right after writes the stream held: those are sent once connected.
   */
  end: () => void
  /** Let go at once: everything this connection holds (socket, timer, buffer) is released. */
  destroy: () => void
  /** Bytes written but not yet passed on (for stats and memory bounds). */
  buffered?: () => number
  /** Stop producing `data` (backpressure from a slow client); resume undoes it. */
  pause: () => void
  resume: () => void
}

/** A kind of upstream (`echo`, `blackhole`, `tcp`, later an Outline/Shadowsocks client). */
export interface UpstreamKind {
  readonly name: string
  /** Opens a connection; throws UpstreamRefusedError when the request is not acceptable. */
  open: (request: OpenRequest, events: UpstreamEvents) => UpstreamConnection
  /** Connections this kind currently holds open (for stats and leak tests). */
  readonly active: number
  /** Releases whatever the kind holds at shutdown. */
  close?: () => Promise<void> | void
}

/** The request cannot be served: the code goes to the client in an `error` frame. */
export class UpstreamRefusedError extends Error {
  constructor (public code: 'UPSTREAM_DENIED' | 'BAD_FRAME', message: string) {
    super(message)
    this.name = 'UpstreamRefusedError'
  }
}
