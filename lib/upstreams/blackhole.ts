import { UpstreamRefusedError, type OpenRequest, type UpstreamConnection, type UpstreamEvents, type UpstreamKind } from './types.js'

/** Takes every byte and never answers: for measuring the client side alone. */
export class BlackholeUpstream implements UpstreamKind {
  readonly name = 'blackhole'
  private open_ = 0

  get active (): number {
    return this.open_
  }

  open (request: OpenRequest, events: UpstreamEvents): UpstreamConnection {
    if (request.target !== undefined) throw new UpstreamRefusedError('BAD_FRAME', 'the blackhole upstream takes no target')
    let live = true
    this.open_++
    const release = (): void => {
      if (!live) return
      live = false
      this.open_--
    }
    queueMicrotask(() => { if (live) events.ready() })
    return {
      write: () => true,
      end: release,
      destroy: release,
      pause: () => {},
      resume: () => {}
    }
  }
}
