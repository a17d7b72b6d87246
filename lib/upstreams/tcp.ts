import { connect, type Socket } from 'node:net'
import { UpstreamRefusedError, type OpenRequest, type UpstreamConnection, type UpstreamEvents, type UpstreamKind } from './types.js'

const TARGET = /^(\[[0-9a-f:.]+\]|[^:\s,[\]/]+):(\d{1,5})$/

export interface TcpUpstreamOptions {
  /** Lower-cased `host:port` entries; nothing else may be reached. Empty: tcp is refused for every target. */
  allow: readonly string[]
  /** A connect that takes longer fails the stream. */
  connectTimeoutMs?: number
  /** After the client closes a stream, how long unsent bytes may take to flush before the socket is dropped. */
  lingerMs?: number
}

export interface TcpTarget { key: string, host: string, port: number }

/** Parses `host:port` or `[v6]:port` into the lower-cased allowlist key and connect options. */
export function parseTarget (target: string): TcpTarget | undefined {
  const match = TARGET.exec(target.toLowerCase())
  if (match === null) return undefined
  const port = Number(match[2])
  if (port < 1 || port > 65535) return undefined
  const host = match[1].startsWith('[') ? match[1].slice(1, -1) : match[1]
  return { key: `${match[1]}:${port}`, host, port }
}

/** Opens a TCP connection per stream, only to targets on the allowlist (`tcp_allow`). */
export class TcpUpstream implements UpstreamKind {
  readonly name = 'tcp'
  private readonly allow: Set<string>
  private readonly sockets = new Set<Socket>()
  private readonly connectTimeoutMs: number
  private readonly lingerMs: number

  constructor (opts: TcpUpstreamOptions) {
    this.allow = new Set(opts.allow.map(a => parseTarget(a)?.key ?? a.toLowerCase()))
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000
    this.lingerMs = opts.lingerMs ?? 10_000
  }

  /** Sockets still open, including ones flushing after the client closed their stream. */
  get active (): number {
    return this.sockets.size
  }

  open (request: OpenRequest, events: UpstreamEvents): UpstreamConnection {
    if (request.target === undefined) throw new UpstreamRefusedError('BAD_FRAME', 'the tcp upstream needs a "target": "host:port"')
    const target = parseTarget(request.target)
    if (target === undefined) throw new UpstreamRefusedError('BAD_FRAME', 'target must be host:port')
    if (!this.allow.has(target.key)) throw new UpstreamRefusedError('UPSTREAM_DENIED', `target ${target.key} is not allowed`)

    const socket = connect({ host: target.host, port: target.port })
    this.sockets.add(socket)
    socket.once('close', () => { this.sockets.delete(socket) })
    socket.setNoDelay(true)

    // Events stop at end() or destroy(): the stream is gone by then.
    let live = true
    const fail = (err: Error): void => {
      if (live) { live = false; events.error(err) }
      socket.destroy()
    }
    socket.setTimeout(this.connectTimeoutMs, () => fail(new Error(`connect to ${target.key} timed out`)))
    socket.once('connect', () => {
      socket.setTimeout(0)
      if (live) events.ready()
    })
    socket.on('data', (chunk: Buffer) => { if (live) events.data(chunk) })
    socket.on('drain', () => { if (live) events.drain() })
    socket.on('end', () => {
      if (live) { live = false; events.end() }
    })
    socket.on('error', fail)

    return {
      write: (chunk) => socket.write(chunk),
      buffered: () => socket.writableLength,
      end: () => {
        live = false
        // Flush what the client sent, then go; a peer that never reads is dropped after the linger time.
        socket.setTimeout(this.lingerMs, () => socket.destroy())
        socket.end(() => socket.destroy())
        // Whatever still comes from the peer is read and dropped, so it is not stuck on a paused socket.
        socket.resume()
      },
      destroy: () => {
        live = false
        socket.destroy()
      },
      pause: () => { socket.pause() },
      resume: () => { socket.resume() }
    }
  }

  close (): void {
    for (const socket of this.sockets) socket.destroy()
  }
}
