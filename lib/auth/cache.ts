import { createHash } from 'node:crypto'
import type { Principal } from './principal.js'

export interface AuthCacheOptions {
  /** Most entries kept; the least recently used goes first. */
  max: number
  /** How long a successful check is trusted. */
  ttlMs: number
  onHit?: () => void
  onMiss?: () => void
  now?: () => number
}

interface Entry {
  principal: Principal
  expiresAt: number
}

/** Which principals an invalidation drops. */
export type PrincipalFilter = { user_id: string } | { device_id: string }

export function matchesPrincipal (principal: Pick<Principal, 'user_id' | 'device_id'>, filter: PrincipalFilter): boolean {
  return 'user_id' in filter ? principal.user_id === filter.user_id : principal.device_id === filter.device_id
}

/**
 * A bounded LRU of successful credential checks with a TTL, so a busy device does not
 * call the backend on every connection. Keys are hashes of the credential
 * (`AuthCache.key`), never the credential itself; refusals are not cached.
 */
export class AuthCache {
  private readonly entries = new Map<string, Entry>()
  private readonly now: () => number

  constructor (private readonly opts: AuthCacheOptions) {
    this.now = opts.now ?? Date.now
  }

  /** A cache key for a credential: sha256 over its parts, with the method as a domain separator. */
  static key (method: string, ...parts: string[]): string {
    const hash = createHash('sha256').update(method)
    for (const part of parts) hash.update('\0').update(part)
    return hash.digest('hex')
  }

  get (key: string): Principal | undefined {
    const entry = this.entries.get(key)
    if (entry !== undefined && entry.expiresAt > this.now()) {
      // Re-inserting moves the entry to the young end of the Map's order.
      this.entries.delete(key)
      this.entries.set(key, entry)
      this.opts.onHit?.()
      return entry.principal
    }
    if (entry !== undefined) this.entries.delete(key)
    this.opts.onMiss?.()
    return undefined
  }

  /** Keeps a principal for the TTL, or less when its credential expires sooner (`expires_at`). */
  set (key: string, principal: Principal): void {
    const expiresAt = Math.min(this.now() + this.opts.ttlMs, principal.expires_at ?? Infinity)
    this.entries.delete(key)
    this.entries.set(key, { principal, expiresAt })
    while (this.entries.size > this.opts.max) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
    }
  }

  delete (key: string): void {
    this.entries.delete(key)
  }

  /** Drops every entry of a user or a device; returns how many. */
  invalidate (filter: PrincipalFilter): number {
    let dropped = 0
    for (const [key, entry] of this.entries) {
      if (matchesPrincipal(entry.principal, filter)) {
        this.entries.delete(key)
        dropped++
      }
    }
    return dropped
  }

  get size (): number {
    return this.entries.size
  }
}
