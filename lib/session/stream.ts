import type { StreamId } from '../../schemas/frames.js'
import { binaryStreamDataHead, streamDataHead } from './framing.js'
import type { UpstreamConnection, UpstreamEvents } from '../upstreams/types.js'

export type StreamState = 'opening' | 'open' | 'closed'

/** Every move a stream can make; anything else is ignored. */
export const STREAM_TRANSITIONS: Readonly<Record<StreamState, readonly StreamState[]>> = {
  opening: ['open', 'closed'],
  open: ['closed'],
  closed: []
}

/** What a stream tells its session. Nothing is called after the stream is closed. */
export interface StreamOwner {
  upstreamData: (stream: Stream, chunk: Buffer) => void
  upstreamEnded: (stream: Stream) => void
  upstreamFailed: (stream: Stream, err: Error) => void
  /** A write was kept but not taken at once: stop reading the client until `streamDrained`. */
  streamBlocked: (stream: Stream) => void
  streamDrained: (stream: Stream) => void
}

/** `taken`: go on; `blocked`: kept, but wait for drain; `overflow`: refused, over the bound before ready. */
export type WriteResult = 'taken' | 'blocked' | 'overflow'

/**
 * One client stream and its upstream connection. Bytes that come before the upstream is
 * ready wait here, in order, up to `bufferLimit` bytes.
 */
export class Stream {
  private head: Buffer | undefined
  private current: StreamState = 'opening'
  private connection: UpstreamConnection | undefined
  private readonly pending: Buffer[] = []
  private pendingBytes = 0
  private reading = true

  constructor (
    readonly id: StreamId,
    readonly upstream: string,
    private readonly owner: StreamOwner,
    private readonly bufferLimit: number,
    /** The client asked for the upstream's bytes as binary messages (`stream_open` `binary: true`). */
    readonly binary = false
  ) {}

  /** The start of this stream's `stream_data` frames to the client, JSON or binary as it was opened; made once. */
  get dataHead (): Buffer {
    return (this.head ??= this.binary ? binaryStreamDataHead(this.id) : streamDataHead(this.id))
  }

  get state (): StreamState {
    return this.current
  }

  /** Bytes held for the upstream: until it is ready, and what it has not passed on yet. */
  get heldBytes (): number {
    return this.pendingBytes + (this.current === 'closed' ? 0 : (this.connection?.buffered?.() ?? 0))
  }

  /** The handlers the upstream reports to. */
  events (): UpstreamEvents {
    return {
      ready: () => this.onReady(),
      data: (chunk) => { if (this.current !== 'closed') this.owner.upstreamData(this, chunk) },
      drain: () => { if (this.current !== 'closed') this.owner.streamDrained(this) },
      end: () => { if (this.current !== 'closed') this.owner.upstreamEnded(this) },
      error: (err) => { if (this.current !== 'closed') this.owner.upstreamFailed(this, err) }
    }
  }

  attach (connection: UpstreamConnection): void {
    this.connection = connection
    if (!this.reading) connection.pause()
  }

  write (bytes: Buffer): WriteResult {
    if (this.current === 'opening') {
      if (this.pendingBytes + bytes.length > this.bufferLimit) return 'overflow'
      this.pending.push(bytes)
      this.pendingBytes += bytes.length
      return 'taken'
    }
    if (this.current !== 'open' || this.connection === undefined) return 'taken'
    return this.connection.write(bytes) ? 'taken' : 'blocked'
  }

  /** Whether upstream data should flow (false while the client cannot keep up). */
  setReading (reading: boolean): void {
    if (this.reading === reading) return
    this.reading = reading
    if (this.connection === undefined || this.current === 'closed') return
    if (reading) this.connection.resume()
    else this.connection.pause()
  }

  /** The client closed the stream: what it sent still goes out, then the upstream ends. */
  end (): void {
    if (!this.moveTo('closed')) return
    for (const chunk of this.pending) this.connection?.write(chunk)
    this.dropPending()
    this.connection?.end()
  }

  /** Drops the stream and everything it holds at once. */
  destroy (): void {
    if (!this.moveTo('closed')) return
    this.dropPending()
    this.connection?.destroy()
  }

  private onReady (): void {
    if (!this.moveTo('open') || this.connection === undefined) return
    let taken = true
    for (const chunk of this.pending) taken = this.connection.write(chunk) && taken
    this.dropPending()
    if (!taken) this.owner.streamBlocked(this)
  }

  private dropPending (): void {
    this.pending.length = 0
    this.pendingBytes = 0
  }

  private moveTo (next: StreamState): boolean {
    if (!STREAM_TRANSITIONS[this.current].includes(next)) return false
    this.current = next
    return true
  }
}
