import { checkAlgorithm, isExpired, jwtRefusalReason, type JwtCodec } from './jwt.js'
import { allow, refuse, type AuthResult } from './principal.js'

const MAX_CLAIM = 256

function claimString (value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' && value.length <= MAX_CLAIM ? value : undefined
}

/** Scopes from `scope` (space separated, RFC 8693) or `scp` (a list). */
function scopesOf (claims: Record<string, unknown>): string[] {
  if (typeof claims.scope === 'string') return claims.scope.split(' ').filter(s => s !== '')
  if (Array.isArray(claims.scp)) return claims.scp.filter((s): s is string => typeof s === 'string')
  return []
}

/**
 * Bearer JWTs from an outside issuer. The codec (@fastify/jwt) is set up with the
 * configured key and an explicit algorithm allowlist, `exp` and `sub` required, and
 * the issuer/audience when configured; the header's `alg` is also checked here first,
 * so `none` or an algorithm of the wrong key kind never reaches a key.
 */
export class ExternalJwtVerifier {
  constructor (private readonly codec: JwtCodec, private readonly algorithms: readonly string[]) {}

  verify (token: string): AuthResult {
    const bad = checkAlgorithm(token, this.algorithms)
    if (bad !== undefined) return refuse(bad)
    let claims: Record<string, unknown>
    try {
      claims = this.codec.verify(token)
    } catch (err) {
      return refuse(jwtRefusalReason(err), isExpired(err) ? 'TOKEN_EXPIRED' : 'UNAUTHORIZED')
    }
    const userId = claimString(claims.sub)
    if (userId === undefined) return refuse('token has no usable sub')
    const deviceId = claimString(claims.device_id)
    return allow({
      user_id: userId,
      ...(deviceId !== undefined ? { device_id: deviceId } : {}),
      method: 'jwt',
      scopes: scopesOf(claims),
      expires_at: Number(claims.exp) * 1000
    })
  }
}
