import { timingSafeEqual } from 'node:crypto'
import { sha256Digest, sha256Hex } from '../hash.js'
import { randomString } from '../random.js'
import type { Principal } from './principal.js'

export interface RefreshStoreOptions {
  /** Life of each refresh token; every rotation starts a new one. */
  ttlMs: number
  /** Most families kept; the least recently used goes first. */
  max: number
  /** How long a revoked family's id is remembered, so access tokens issued for it are refused (the access token TTL). */
  revokedTtlMs: number
  now?: () => number
}

/**
 * One login: every refresh token rotated from the same first token. Only the
 * current token (its generation) is valid; presenting an older one means a token
 * was copied, and the whole family is revoked.
 */
export interface RefreshFamily<C> {
  /** Secret: it appears only inside the family's refresh tokens. */
  readonly id: string
  /** Public: access tokens carry it (`sid`) to find the family. */
  readonly sid: string
  generation: number
  /** sha256 of the current token, hex: a string costs a session a third of what a 32-byte Buffer does (about 80 bytes against 220). */
  tokenHash: string
  principal: Principal
  /** What re-authorizes the family at each refresh (the original method's credential). */
  credential: C
  expiresAt: number
}

export type InspectResult<C> =
  | { status: 'ok', family: RefreshFamily<C> }
  | { status: 'reused', family: RefreshFamily<C> }
  | { status: 'invalid' }
  | { status: 'expired' }

export type RotateResult<C> = Exclude<InspectResult<C>, { status: 'ok' }> | { status: 'ok', family: RefreshFamily<C>, token: string }

const TOKEN = /^([A-Za-z0-9_-]{22})\.(\d{1,10})\.([A-Za-z0-9_-]{43})$/

/**
 * Opaque rotating refresh tokens, in memory. Tokens look like `<family>.<generation>.<secret>`;
 * only a sha256 of the current one is stored. Bounded by family count, swept on expiry.
 */
export class RefreshStore<C> {
  private readonly families = new Map<string, RefreshFamily<C>>()
  private readonly bySid = new Map<string, string>()
  private readonly revoked = new Map<string, number>()
  private readonly now: () => number

  constructor (private readonly opts: RefreshStoreOptions) {
    this.now = opts.now ?? Date.now
  }

  /** Starts a family for a fresh authentication; returns its first refresh token. */
  issue (principal: Principal, credential: C): { family: RefreshFamily<C>, token: string } {
    const family: RefreshFamily<C> = {
      id: randomString(16, 'base64url'),
      sid: randomString(12, 'base64url'),
      generation: 0,
      tokenHash: '',
      principal,
      credential,
      expiresAt: 0
    }
    const token = this.advance(family)
    this.bySid.set(family.sid, family.id)
    this.evict()
    return { family, token }
  }

  /** Spends a refresh token: the next one of its family, or why not. A reused token revokes its family. */
  rotate (token: string): RotateResult<C> {
    const found = this.inspect(token)
    return found.status === 'ok' ? { status: 'ok', family: found.family, token: this.advance(found.family) } : found
  }

  /** Whether a refresh token is the current one of a live family, without spending it. A reused token revokes its family. */
  inspect (token: string): InspectResult<C> {
    const match = TOKEN.exec(token)
    if (match === null) return { status: 'invalid' }
    const family = this.families.get(match[1])
    if (family === undefined) return { status: 'invalid' }
    const generation = Number(match[2])
    if (generation < family.generation) {
      this.revoke(family.sid)
      return { status: 'reused', family }
    }
    if (generation !== family.generation || !timingSafeEqual(sha256Digest(token), Buffer.from(family.tokenHash, 'hex'))) return { status: 'invalid' }
    if (family.expiresAt <= this.now()) {
      this.drop(family)
      return { status: 'expired' }
    }
    return { status: 'ok', family }
  }

  /** The family an access token was issued for (by its `sid`), if it is still live. */
  family (sid: string): RefreshFamily<C> | undefined {
    const id = this.bySid.get(sid)
    const family = id !== undefined ? this.families.get(id) : undefined
    return family !== undefined && family.expiresAt > this.now() ? family : undefined
  }

  /** Ends a family: its refresh tokens stop working and its access tokens are refused until they expire. */
  revoke (sid: string): void {
    const id = this.bySid.get(sid)
    const family = id !== undefined ? this.families.get(id) : undefined
    if (family !== undefined) this.drop(family)
    this.revoked.set(sid, this.now() + this.opts.revokedTtlMs)
    while (this.revoked.size > this.opts.max) this.revoked.delete(this.revoked.keys().next().value as string)
  }

  isRevoked (sid: string): boolean {
    const until = this.revoked.get(sid)
    return until !== undefined && until > this.now()
  }

  /** Removes expired families and forgotten revocations; returns how many families went. */
  sweep (): number {
    const now = this.now()
    let removed = 0
    for (const family of [...this.families.values()]) {
      if (family.expiresAt <= now) {
        this.drop(family)
        removed++
      }
    }
    for (const [sid, until] of this.revoked) if (until <= now) this.revoked.delete(sid)
    return removed
  }

  get size (): number {
    return this.families.size
  }

  private advance (family: RefreshFamily<C>): string {
    family.generation++
    const token = `${family.id}.${family.generation}.${randomString(32, 'base64url')}`
    family.tokenHash = sha256Hex(token)
    family.expiresAt = this.now() + this.opts.ttlMs
    // Re-inserting keeps the Map in least-recently-used order for eviction.
    this.families.delete(family.id)
    this.families.set(family.id, family)
    return token
  }

  private drop (family: RefreshFamily<C>): void {
    this.families.delete(family.id)
    this.bySid.delete(family.sid)
  }

  private evict (): void {
    while (this.families.size > this.opts.max) {
      const oldest = this.families.values().next().value as RefreshFamily<C>
      this.drop(oldest)
    }
  }
}
