import type { FastifyBaseLogger } from 'fastify'
import { ApiKeyStore } from './api-keys.js'
import { AuthCache, type PrincipalFilter } from './cache.js'
import type { ExternalJwtVerifier } from './external-jwt.js'
import { GatewayTokens, type AccessTokenResult } from './gateway-tokens.js'
import { allow, refuse, type AuthResult, type Principal, type ReauthResult, type TokenPair } from './principal.js'
import type { RefreshStore, RotateResult } from './refresh-store.js'
import { isCheckFailure, type DeviceAuthenticator, type DeviceCheck } from './types.js'

export type { AuthMethod, AuthResult, Principal, ReauthResult, RefusalCode, TokenPair } from './principal.js'
export { identityHeaders } from './principal.js'
export type { PrincipalFilter } from './cache.js'

/**
 * What re-authorizes a login by its original method: kept in memory with the
 * principal and its refresh family, never logged, never sent anywhere but its authority.
 */
export type Credential =
  | { method: 'device', device_id: string, token: string }
  | { method: 'api_key', key_sha256: string }
  | { method: 'jwt', token: string }

/** The credential fields of a /ws `hello` frame; exactly one kind must be present. */
export interface HelloCredentials {
  device_id?: string
  token?: string
  api_key?: string
  /** A gateway access token or an external JWT. */
  access_token?: string
}

/** Outcome of `refreshTokens`; `code` is the HTTP error code to answer with. */
export type RefreshResult =
  | { ok: true, principal: Principal, tokens: TokenPair }
  | { ok: false, code: 'INVALID_REFRESH_TOKEN' | 'UNAUTHORIZED' | 'TOKEN_EXPIRED' | 'AUTH_UNAVAILABLE', reason: string }

export type RefreshOutcome = 'ok' | 'invalid' | 'expired' | 'reused' | 'refused' | 'error'

export interface AuthenticatorOptions {
  deviceAuth: DeviceAuthenticator
  apiKeys: ApiKeyStore
  externalJwt?: ExternalJwtVerifier
  tokens: GatewayTokens
  refresh: RefreshStore<Credential>
  cache: AuthCache
  log: FastifyBaseLogger
  /** Told of every refresh attempt (metrics). */
  onRefresh?: (outcome: RefreshOutcome) => void
}

/** Thrown by `issueTokens` for a principal this authenticator did not produce. */
export class NoCredentialError extends Error {
  constructor () {
    super('tokens are issued only for a principal that came from a device, API key or external JWT check')
  }
}

/** A principal linked to a refresh family (it came from a gateway access token). */
interface FamilyGrant { method: 'family', sid: string }
type Grant = Credential | FamilyGrant

function devicePrincipal (deviceId: string, check: Extract<DeviceCheck, { allowed: true }>): Principal {
  return {
    user_id: check.user_id,
    device_id: deviceId,
    method: 'device',
    scopes: [],
    ...(check.subscription_status !== undefined ? { subscription_status: check.subscription_status } : {})
  }
}

/**
 * Every way in: device, API key, external JWT, gateway access token, all giving a
 * `Principal`; the gateway's token pairs; and re-checks of live principals.
 * Each principal object it returns is linked (privately) to the credential it came
 * from, which is what `issueTokens` and `reauthorize` use: pass it back as is.
 */
export class Authenticator {
  private readonly grants = new WeakMap<Principal, Grant>()
  /** The refresh family a principal's tokens belong to, so a re-check renews within it. */
  private readonly families = new WeakMap<Principal, string>()
  private readonly inflight = new Map<string, Promise<AuthResult>>()

  constructor (private readonly opts: AuthenticatorOptions) {}

  /** A device id and token, checked by `fastify.deviceAuth` (cached). Backend failures give `AUTH_UNAVAILABLE`. */
  async authenticateDevice (deviceId: string, token: string): Promise<AuthResult> {
    if (deviceId === '' || token === '') return refuse('device_id and token are required')
    const credential: Credential = { method: 'device', device_id: deviceId, token }
    const key = AuthCache.key('device', deviceId, token)
    const cached = this.opts.cache.get(key)
    if (cached !== undefined) return this.granted({ ...cached }, credential)
    // Connections of one device arriving together share one backend call.
    let pending = this.inflight.get(key)
    if (pending === undefined) {
      pending = this.checkDevice(deviceId, token, key).finally(() => this.inflight.delete(key))
      this.inflight.set(key, pending)
    }
    const result = await pending
    return result.ok ? this.granted({ ...result.principal }, credential) : result
  }

  /**
   * A key from `X-API-Key` or a hello frame, looked up by its sha256. A login (hello,
   * `/auth/token`) gets a principal of its own, since its refresh family is linked to that
   * object. `shared` is for checks that never log in (route auth, once per request): the
   * key's one frozen principal, linked once rather than a new WeakMap entry per request.
   */
  authenticateApiKey (key: string, shared = false): AuthResult {
    const found = this.opts.apiKeys.lookup(key)
    if (found === undefined) return refuse('unknown api key')
    if (shared) {
      if (!this.grants.has(found.principal)) this.grants.set(found.principal, { method: 'api_key', key_sha256: found.hash })
      return allow(found.principal)
    }
    return this.granted({ ...found.principal, scopes: [...found.principal.scopes] }, { method: 'api_key', key_sha256: found.hash })
  }

  /** An external JWT (cached until the earlier of the cache TTL and its `exp`). */
  authenticateJwt (token: string): AuthResult {
    const verifier = this.opts.externalJwt
    if (verifier === undefined) return refuse('external JWTs are not accepted')
    const key = AuthCache.key('jwt', token)
    const cached = this.opts.cache.get(key)
    if (cached !== undefined) return this.granted({ ...cached }, { method: 'jwt', token })
    const result = verifier.verify(token)
    if (!result.ok) return result
    this.opts.cache.set(key, result.principal)
    return this.granted({ ...result.principal }, { method: 'jwt', token })
  }

  /** A gateway access token: its signature, expiry, and that its refresh family was not revoked. */
  authenticateAccessToken (token: string): AuthResult {
    return this.acceptAccessToken(this.opts.tokens.lookup(token) ?? this.opts.tokens.verify(token))
  }

  private acceptAccessToken (result: AccessTokenResult): AuthResult {
    if (!result.ok) return result
    if (this.opts.refresh.isRevoked(result.sid)) return refuse('token revoked')
    const principal = result.principal
    // A remembered token's principal is one object per token, linked on its first use.
    if (!this.grants.has(principal)) {
      this.grants.set(principal, { method: 'family', sid: result.sid })
      this.families.set(principal, result.sid)
    }
    return allow(principal)
  }

  /** `Authorization: Bearer`: the gateway's own access token, otherwise an external JWT. */
  authenticateBearer (token: string): AuthResult {
    if (token === '') return refuse('empty bearer token')
    // A token verified before skips the peek that chooses the verifier.
    const known = this.opts.tokens.lookup(token)
    if (known !== undefined) return this.acceptAccessToken(known)
    return GatewayTokens.claims(token) ? this.authenticateAccessToken(token) : this.authenticateJwt(token)
  }

  /** The credentials of a /ws `hello`: `device_id`+`token`, `api_key`, or `access_token` (exactly one kind). */
  async authenticateHello (frame: HelloCredentials): Promise<AuthResult> {
    const kinds = [frame.token !== undefined, frame.api_key !== undefined, frame.access_token !== undefined].filter(Boolean).length
    if (kinds === 0) return refuse('no credentials')
    if (kinds > 1) return refuse('more than one kind of credentials')
    if (frame.token !== undefined) return await this.authenticateDevice(frame.device_id ?? '', frame.token)
    if (frame.api_key !== undefined) return this.authenticateApiKey(frame.api_key)
    return this.authenticateBearer(frame.access_token as string)
  }

  /** A new access token and the first refresh token of a new login, for a principal from a primary credential (device, API key, external JWT). */
  issueTokens (principal: Principal): TokenPair {
    // Not for a principal from a gateway access token: that would mint logins past refresh rotation and reuse detection.
    const credential = this.grants.get(principal)
    if (credential === undefined || credential.method === 'family') throw new NoCredentialError()
    const stored: Principal = { ...principal }
    delete stored.expires_at
    const { family, token } = this.opts.refresh.issue(stored, credential)
    this.families.set(principal, family.sid)
    const access = this.opts.tokens.sign(stored, family.sid)
    return { access_token: access.token, refresh_token: token, expires_in: access.expiresIn }
  }

  /**
   * A new access token in the login the principal's tokens already belong to (after a
   * successful `reauthorize` of a live session): no new refresh family, so a long
   * session does not pile up logins; the client keeps its refresh token. Undefined when
   * the principal has no live login, or it was revoked.
   */
  renewAccess (principal: Principal): { access_token: string, expires_in: number } | undefined {
    const sid = this.families.get(principal)
    if (sid === undefined || this.opts.refresh.isRevoked(sid) || this.opts.refresh.family(sid) === undefined) return undefined
    const stored: Principal = { ...principal }
    delete stored.expires_at
    const access = this.opts.tokens.sign(stored, sid)
    return { access_token: access.token, expires_in: access.expiresIn }
  }

  /**
   * Spends a refresh token: the login is re-authorized by its original method (device
   * check through the cache, key still configured, external JWT still valid) and a new
   * pair is issued. A reused token revokes its family; a refused re-check revokes it too.
   */
  async refreshTokens (refreshToken: string): Promise<RefreshResult> {
    const found = this.opts.refresh.inspect(refreshToken)
    if (found.status !== 'ok') return this.refreshRefused(found)
    const family = found.family
    const check = await this.check(family.credential)
    if (!check.ok && check.code === 'AUTH_UNAVAILABLE') {
      // No verdict on the login: the token is not spent, the client may retry it.
      this.opts.onRefresh?.('error')
      return { ok: false, code: 'AUTH_UNAVAILABLE', reason: check.reason }
    }
    if (!check.ok) {
      this.opts.refresh.revoke(family.sid)
      this.opts.onRefresh?.('refused')
      return { ok: false, code: check.code, reason: check.reason }
    }
    // Spent only now, after the await: a copy presented meanwhile has made this one a reuse.
    const rotated = this.opts.refresh.rotate(refreshToken)
    if (rotated.status !== 'ok') return this.refreshRefused(rotated)
    const token = rotated.token
    const principal: Principal = { ...check.principal }
    delete principal.expires_at
    family.principal = principal
    const access = this.opts.tokens.sign(principal, family.sid)
    this.grants.set(principal, family.credential)
    this.families.set(principal, family.sid)
    this.opts.onRefresh?.('ok')
    return { ok: true, principal, tokens: { access_token: access.token, refresh_token: token, expires_in: access.expiresIn } }
  }

  /**
   * Re-checks a live principal now, bypassing the cache: device → `deviceAuth` is asked
   * afresh; api_key → the key must still be configured; jwt → `refresh_required` (only the
   * client can renew it). Throws when the device backend cannot be asked.
   */
  async reauthorize (principal: Principal): Promise<ReauthResult> {
    const grant = this.grants.get(principal)
    let credential: Credential | undefined
    if (grant?.method === 'family') {
      if (this.opts.refresh.isRevoked(grant.sid)) return { status: 'refused', reason: 'token revoked' }
      credential = this.opts.refresh.family(grant.sid)?.credential
    } else {
      credential = grant
    }
    if (credential === undefined) return { status: 'refresh_required', reason: 'no credential to re-check with' }
    if (credential.method === 'jwt') return { status: 'refresh_required', reason: 'a JWT can only be renewed by the client' }
    if (credential.method === 'api_key') {
      return this.opts.apiKeys.has(credential.key_sha256)
        ? { status: 'allowed', principal }
        : { status: 'refused', reason: 'api key revoked' }
    }
    const key = AuthCache.key('device', credential.device_id, credential.token)
    this.opts.cache.delete(key)
    const check = await this.opts.deviceAuth.validate(credential.device_id, credential.token)
    if (isCheckFailure(check)) throw new Error(`device check failed: ${(check as { reason: string }).reason}`)
    if (!check.allowed) return { status: 'refused', reason: check.reason }
    const fresh = devicePrincipal(credential.device_id, check)
    this.opts.cache.set(key, fresh)
    this.grants.set(fresh, grant ?? credential)
    const sid = grant?.method === 'family' ? grant.sid : this.families.get(principal)
    if (sid !== undefined) this.families.set(fresh, sid)
    return { status: 'allowed', principal: fresh }
  }

  /** Drops the cached checks of a user or a device; returns how many. */
  invalidate (filter: PrincipalFilter): number {
    return this.opts.cache.invalidate(filter)
  }

  private refreshRefused (found: Exclude<RotateResult<Credential>, { status: 'ok' }>): RefreshResult {
    this.opts.onRefresh?.(found.status)
    if (found.status === 'reused') {
      this.opts.log.warn({ user_id: found.family.principal.user_id, device_id: found.family.principal.device_id }, 'refresh token reused: its family is revoked')
      return { ok: false, code: 'INVALID_REFRESH_TOKEN', reason: 'already used; every token of this login is revoked' }
    }
    return { ok: false, code: 'INVALID_REFRESH_TOKEN', reason: found.status === 'expired' ? 'expired' : 'unknown or already replaced' }
  }

  private async checkDevice (deviceId: string, token: string, key: string): Promise<AuthResult> {
    const check = await this.opts.deviceAuth.validate(deviceId, token)
    if (isCheckFailure(check)) return { ok: false, code: 'AUTH_UNAVAILABLE', reason: (check as { reason: string }).reason }
    if (!check.allowed) return refuse(check.reason)
    const principal = devicePrincipal(deviceId, check)
    this.opts.cache.set(key, principal)
    return allow(principal)
  }

  /** Re-authorizes a stored credential through the normal (cached) path. */
  private async check (credential: Credential): Promise<AuthResult> {
    if (credential.method === 'device') return await this.authenticateDevice(credential.device_id, credential.token)
    if (credential.method === 'jwt') return this.authenticateJwt(credential.token)
    const principal = this.opts.apiKeys.principalOf(credential.key_sha256)
    return principal !== undefined ? allow(principal) : refuse('api key revoked')
  }

  private granted (principal: Principal, credential: Credential): AuthResult {
    this.grants.set(principal, credential)
    return allow(principal)
  }
}
