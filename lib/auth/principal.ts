/** How a client proved who it is. */
export type AuthMethod = 'device' | 'api_key' | 'jwt'

/**
 * Who is behind a request or a connection, whatever the method. A gateway access
 * token carries the principal of the authentication it was issued for.
 */
export interface Principal {
  user_id: string
  device_id?: string
  method: AuthMethod
  scopes: string[]
  /** From the device check, when the backend reports one. */
  subscription_status?: string
  /** Epoch ms after which the credential this principal came from is no longer valid, when it has such a limit. */
  expires_at?: number
}

/**
 * Why a credential was refused: `TOKEN_EXPIRED` means it was genuine but too old;
 * `AUTH_UNAVAILABLE` that the device backend could not be asked (no verdict).
 */
export type RefusalCode = 'UNAUTHORIZED' | 'TOKEN_EXPIRED' | 'AUTH_UNAVAILABLE'

export type AuthResult =
  | { ok: true, principal: Principal }
  | { ok: false, code: RefusalCode, reason: string }

/**
 * Outcome of re-checking a live principal: still `allowed` (possibly with updated
 * details), `refused` (stop the connection), or `refresh_required` (the gateway
 * cannot tell by itself: the client has to present a fresh credential).
 */
export type ReauthResult =
  | { status: 'allowed', principal: Principal }
  | { status: 'refused', reason: string }
  | { status: 'refresh_required', reason: string }

/** What `/auth/token`, `/auth/refresh` and the /ws integration hand to the client. */
export interface TokenPair {
  access_token: string
  refresh_token: string
  /** Seconds until the access token expires. */
  expires_in: number
}

export function allow (principal: Principal): AuthResult {
  return { ok: true, principal }
}

export function refuse (reason: string, code: RefusalCode = 'UNAUTHORIZED'): AuthResult {
  return { ok: false, code, reason }
}

/** The identity headers the gateway sets for upstreams (client copies are always dropped first). */
export function identityHeaders (principal: Principal): Record<string, string> {
  const headers: Record<string, string> = { 'x-user-id': principal.user_id, 'x-auth-method': principal.method }
  if (principal.device_id !== undefined) headers['x-device-id'] = principal.device_id
  return headers
}
