import type { ApiKeyConfig } from '../../schemas/config.js'
import type { Principal } from './principal.js'
import { sha256Hex } from '../hash.js'

/**
 * API keys from the config, held only as sha256 hashes: the presented key is hashed
 * and looked up, so no key is ever compared or kept in clear.
 */
export class ApiKeyStore {
  /**
   * One frozen principal per key, the same object on every request: the authenticator links a
   * principal to its credential in a WeakMap, and a new object per request made that a new
   * entry (and garbage) per request.
   */
  private readonly keys = new Map<string, Principal>()

  constructor (keys: ApiKeyConfig[]) {
    for (const key of keys) {
      const scopes = Object.freeze([...(key.scopes ?? [])]) as string[]
      this.keys.set(key.key_sha256.toLowerCase(), Object.freeze({ user_id: key.user_id, method: 'api_key', scopes }))
    }
  }

  /** The principal for a presented key, with the key's hash (the handle for later checks), or undefined. */
  lookup (key: string): { principal: Principal, hash: string } | undefined {
    if (key === '') return undefined
    const hash = sha256Hex(key)
    const principal = this.principalOf(hash)
    return principal !== undefined ? { principal, hash } : undefined
  }

  /** The principal of the key with this hash while it is configured. */
  principalOf (hash: string): Principal | undefined {
    return this.keys.get(hash)
  }

  /** True while a key with this hash is configured. */
  has (hash: string): boolean {
    return this.keys.has(hash)
  }

  get size (): number {
    return this.keys.size
  }
}
