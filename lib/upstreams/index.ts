import { BlackholeUpstream } from './blackhole.js'
import { EchoUpstream } from './echo.js'
import { TcpUpstream, type TcpUpstreamOptions } from './tcp.js'
import type { UpstreamKind } from './types.js'

export * from './types.js'
export { BlackholeUpstream } from './blackhole.js'
export { EchoUpstream } from './echo.js'
export { TcpUpstream, parseTarget, type TcpUpstreamOptions } from './tcp.js'

/** The kinds of upstream a stream may name in `stream_open.upstream`. */
export class UpstreamRegistry {
  private readonly kinds = new Map<string, UpstreamKind>()

  /** Adds a kind (an Outline client, say); a name can be taken once. */
  register (kind: UpstreamKind): void {
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(kind.name)) throw new Error(`upstream name ${JSON.stringify(kind.name)} must be 1-64 of a-z 0-9 . _ -`)
    if (this.kinds.has(kind.name)) throw new Error(`upstream ${kind.name} is already registered`)
    this.kinds.set(kind.name, kind)
  }

  get (name: string): UpstreamKind | undefined {
    return this.kinds.get(name)
  }

  names (): string[] {
    return [...this.kinds.keys()]
  }

  /** Open connections per kind. */
  stats (): Record<string, number> {
    return Object.fromEntries([...this.kinds].map(([name, kind]) => [name, kind.active]))
  }

  async close (): Promise<void> {
    for (const kind of this.kinds.values()) await kind.close?.()
  }
}

/** The built-in kinds: `echo`, `blackhole` and `tcp` (limited to the allowlist). */
export function createUpstreamRegistry (tcp: TcpUpstreamOptions): UpstreamRegistry {
  const registry = new UpstreamRegistry()
  registry.register(new EchoUpstream())
  registry.register(new BlackholeUpstream())
  registry.register(new TcpUpstream(tcp))
  return registry
}
