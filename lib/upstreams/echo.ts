import { UpstreamRefusedError, type OpenRequest, type UpstreamConnection, type UpstreamEvents, type UpstreamKind } from './types.js'

/** Bytes queued for the client above which `write` asks the stream to wait. */
const ECHO_HIGH_WATER = 256 * 1024

class EchoConnection implements UpstreamConnection {
  private readonly queue: Buffer[] = []
  private queued = 0
  private flowing = true
  private needDrain = false
  private immediate: NodeJS.Immediate | undefined
  private live = true

  constructor (private readonly events: UpstreamEvents, private readonly onRelease: () => void) {
    queueMicrotask(() => { if (this.live) events.ready() })
  }

  write (chunk: Buffer): boolean {
    if (!this.live) return false
    this.queue.push(chunk)
    this.queued += chunk.length
    this.schedule()
    if (this.queued < ECHO_HIGH_WATER) return true
    this.needDrain = true
    return false
  }

  buffered (): number {
    return this.queued
  }

  end (): void {
    this.destroy()
  }

  destroy (): void {
    if (!this.live) return
    this.live = false
    clearImmediate(this.immediate)
    this.immediate = undefined
    this.queue.length = 0
    this.queued = 0
    this.onRelease()
  }

  pause (): void {
    this.flowing = false
  }

  resume (): void {
    this.flowing = true
    this.schedule()
  }

  // Echoes on a later turn, so the data never re-enters the caller of `write`.
  private schedule (): void {
    if (this.immediate !== undefined || !this.flowing || this.queue.length === 0) return
    this.immediate = setImmediate(() => { this.immediate = undefined; this.flush() })
  }

  private flush (): void {
    while (this.live && this.flowing && this.queue.length > 0) {
      const chunk = this.queue.shift() as Buffer
      this.queued -= chunk.length
      this.events.data(chunk)
    }
    if (this.live && this.needDrain && this.queued < ECHO_HIGH_WATER) {
      this.needDrain = false
      this.events.drain()
    }
  }
}

/** Sends every byte back on the same stream. */
export class EchoUpstream implements UpstreamKind {
  readonly name = 'echo'
  private open_ = 0

  get active (): number {
    return this.open_
  }

  open (request: OpenRequest, events: UpstreamEvents): UpstreamConnection {
    if (request.target !== undefined) throw new UpstreamRefusedError('BAD_FRAME', 'the echo upstream takes no target')
    this.open_++
    return new EchoConnection(events, () => { this.open_-- })
  }
}
