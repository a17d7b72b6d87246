import { checkAlgorithm, isExpired, jwtRefusalReason, peekJwt, type JwtCodec } from './jwt.js'
import type { AuthMethod, Principal } from './principal.js'

/** `iss` and `aud` of the gateway's own access tokens. */
export const GATEWAY_ISSUER = 'httvps-gateway'
const METHODS: readonly AuthMethod[] = ['device', 'api_key', 'jwt']

export type AccessTokenResult =
  | { ok: true, principal: Principal, sid: string }
  | { ok: false, code: 'UNAUTHORIZED' | 'TOKEN_EXPIRED', reason: string }

/** A remembered verification, with the token it was made for. */
interface VerifiedToken { token: string, result: { ok: true, principal: Principal, sid: string } }

/**
 * The map key of a token: its last 32 characters, which lie in the signature for every
 * algorithm the gateway signs with (an HS256 signature is 43). Each request's header is a new
 * string whose hash V8 computes over every character on a map lookup; the whole 200-300
 * character token cost about 3,000 instructions there, and comparing it with the remembered
 * one is a memory compare. The key is as unique as the token in practice, and two tokens that
 * share one are still told apart by that compare.
 */
function cacheKey (token: string): string {
  return token.length > 32 ? token.slice(-32) : token
}

/** Verified access tokens remembered at once; the oldest is dropped first. */
export const VERIFIED_CACHE_MAX = 10_000

/**
 * The gateway's short-lived access tokens: a JWT carrying the principal (`sub`, `did`,
 * `mth`, `scp`) and `sid`, the refresh family it belongs to.
 */
export class GatewayTokens {
  /**
   * Tokens already verified, until they expire: a busy client presents the same token on
   * every request, and decoding plus an HMAC per request was most of what `auth: required`
   * cost. Revocation is still checked by the caller each time. Keyed by the signature's tail (see
   * `cacheKey`), and a hit only counts when the whole token is the one verified.
   */
  private readonly verified = new Map<string, VerifiedToken>()

  constructor (private readonly codec: JwtCodec, private readonly algorithm: string, readonly ttlMs: number) {}

  /**
   * A token verified before and not expired since, or undefined. Its principal is the same
   * frozen object for every request with that token, so the authenticator's WeakMap links
   * it once, not once per request.
   */
  lookup (token: string): AccessTokenResult | undefined {
    const key = cacheKey(token)
    const hit = this.verified.get(key)
    if (hit === undefined || hit.token !== token) return undefined
    if ((hit.result.principal.expires_at as number) <= Date.now()) {
      this.verified.delete(key)
      return undefined
    }
    return hit.result
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
    const key = cacheKey(token)
    // A token with the same key replaces its entry: nothing else has to go.
    if (this.verified.size >= VERIFIED_CACHE_MAX && !this.verified.has(key)) this.verified.delete(this.verified.keys().next().value as string)
    const frozen = Object.freeze({ ...principal, scopes: Object.freeze([...principal.scopes]) as string[] })
    this.verified.set(key, { token, result: Object.freeze({ ok: true, principal: frozen, sid }) })
    return { ok: true, principal, sid }
  }
}
