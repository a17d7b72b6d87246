/** The part of @fastify/jwt's decorator the gateway uses (sign with the registered options, verify with them). */
export interface JwtCodec {
  sign: (payload: Record<string, unknown>) => string
  verify: (token: string) => Record<string, unknown>
}

const SEGMENT = /^[A-Za-z0-9_-]+$/

/** The header and payload of a compact JWS, unverified; undefined when it is not one. */
export function peekJwt (token: string): { header: Record<string, unknown>, payload: Record<string, unknown> } | undefined {
  const parts = token.split('.')
  if (parts.length !== 3 || !SEGMENT.test(parts[0]) || !SEGMENT.test(parts[1])) return undefined
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as unknown
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as unknown
    if (!isObject(header) || !isObject(payload)) return undefined
    return { header, payload }
  } catch {
    return undefined
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** fast-jwt's error code for a genuine token past its `exp`. */
export function isExpired (err: unknown): boolean {
  return (err as { code?: string }).code === 'FAST_JWT_EXPIRED'
}

/** A short reason for a refused token that says nothing about the key. */
export function jwtRefusalReason (err: unknown): string {
  const code = (err as { code?: string }).code ?? ''
  switch (code) {
    case 'FAST_JWT_EXPIRED': return 'token expired'
    case 'FAST_JWT_INACTIVE': return 'token not yet valid'
    case 'FAST_JWT_INVALID_SIGNATURE': return 'invalid signature'
    case 'FAST_JWT_INVALID_ALGORITHM': return 'algorithm not allowed'
    case 'FAST_JWT_MISSING_SIGNATURE': return 'unsigned token'
    case 'FAST_JWT_CLAIM_VALUE_INVALID': return 'issuer or audience not accepted'
    case 'FAST_JWT_MISSING_REQUIRED_CLAIM': return 'a required claim is missing'
    case 'FAST_JWT_MALFORMED': case 'FAST_JWT_INVALID_TYPE': return 'malformed token'
    default: return 'invalid token'
  }
}

/** Refuses before any key is used: not a JWS, `alg` absent, `none`, or outside the allowlist. */
export function checkAlgorithm (token: string, algorithms: readonly string[]): string | undefined {
  const peeked = peekJwt(token)
  if (peeked === undefined) return 'malformed token'
  const alg = peeked.header.alg
  if (typeof alg !== 'string' || alg.toLowerCase() === 'none') return 'unsigned token'
  if (!algorithms.includes(alg)) return `algorithm ${alg.slice(0, 16)} not allowed`
  return undefined
}
