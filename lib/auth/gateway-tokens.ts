import { checkAlgorithm, isExpired, jwtRefusalReason, peekJwt, type JwtCodec } from './jwt.js'
import type { AuthMethod, Principal } from './principal.js'

/** `iss` and `aud` of the gateway's own access tokens. */
export const GATEWAY_ISSUER = 'httvps-gateway'
const METHODS: readonly AuthMethod[] = ['device', 'api_key', 'jwt']

export type AccessTokenResult =
  | { ok: true, principal: Principal, sid: string }
  | { ok: false, code: 'UNAUTHORIZED' | 'TOKEN_EXPIRED', reason: string }

/**
 * The gateway's short-lived access tokens: a JWT carrying the principal (`sub`, `did`,
 * `mth`, `scp`) and `sid`, the refresh family it belongs to.
 */
/** Verified access tokens remembered at once; the oldest is dropped first. */
export const VERIFIED_CACHE_MAX = 10_000

export class GatewayTokens {
  /**
   * Tokens already verified, by their exact text, until they expire: a busy client
   * presents the same token on every request, and decoding plus an HMAC per request was
   * most of what `auth: required` cost. Revocation is still checked by the caller each time.
   */
  private readonly verified = new Map<string, { ok: true, principal: Principal, sid: string }>()

  constructor (private readonly codec: JwtCodec, private readonly algorithm: string, readonly ttlMs: number) {}

  /**
   * A token verified before and not expired since, or undefined. Its principal is the same
   * frozen object for every request with that token, so the authenticator's WeakMap links
   * it once, not once per request.
   */
  lookup (token: string): AccessTokenResult | undefined {
    const hit = this.verified.get(token)
    if (hit === undefined) return undefined
    if ((hit.principal.expires_at as number) <= Date.now()) {
      this.verified.delete(token)
      return undefined
    }
    return hit
  }

  /** True when a token says it is the gateway's (unverified: only chooses the verifier). */
  static claims (token: string): boolean {
    return peekJwt(token)?.payload.iss === GATEWAY_ISSUER
  }

  sign (principal: Principal, sid: string): { token: string, expiresIn: number } {
    const claims: Record<string, unknown> = { sub: principal.user_id, mth: principal.method, scp: principal.scopes, sid }
    if (principal.device_id !== undefined) claims.did = principal.device_id
    if (principal.subscription_status !== undefined) claims.sst = principal.subscription_status
    return { token: this.codec.sign(claims), expiresIn: Math.floor(this.ttlMs / 1000) }
  }

  verify (token: string): AccessTokenResult {
    const bad = checkAlgorithm(token, [this.algorithm])
    if (bad !== undefined) return { ok: false, code: 'UNAUTHORIZED', reason: bad }
    let claims: Record<string, unknown>
    try {
      claims = this.codec.verify(token)
    } catch (err) {
      return { ok: false, code: isExpired(err) ? 'TOKEN_EXPIRED' : 'UNAUTHORIZED', reason: jwtRefusalReason(err) }
    }
    const { sub, did, mth, scp, sst, sid, exp } = claims
    if (typeof sub !== 'string' || typeof sid !== 'string' || !METHODS.includes(mth as AuthMethod)) {
      return { ok: false, code: 'UNAUTHORIZED', reason: 'malformed access token' }
    }
    const principal: Principal = {
      user_id: sub,
      method: mth as AuthMethod,
      scopes: Array.isArray(scp) ? scp.filter((s): s is string => typeof s === 'string') : [],
      expires_at: Number(exp) * 1000
    }
    if (typeof did === 'string') principal.device_id = did
    if (typeof sst === 'string') principal.subscription_status = sst
    if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.delete(this.verified.keys().next().value as string)
    const frozen = Object.freeze({ ...principal, scopes: Object.freeze([...principal.scopes]) as string[] })
    this.verified.set(token, Object.freeze({ ok: true, principal: frozen, sid }))
    return { ok: true, principal, sid }
  }
}
