import { createHash } from 'node:crypto'
import type { ApiKeyConfig } from '../../schemas/config.js'
import type { Principal } from './principal.js'

export function sha256Hex (value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

/**
 * API keys from the config, held only as sha256 hashes: the presented key is hashed
 * and looked up, so no key is ever compared or kept in clear.
 */
export class ApiKeyStore {
  private readonly keys = new Map<string, ApiKeyConfig>()

  constructor (keys: ApiKeyConfig[]) {
    for (const key of keys) this.keys.set(key.key_sha256.toLowerCase(), key)
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
    const entry = this.keys.get(hash)
    return entry !== undefined ? { user_id: entry.user_id, method: 'api_key', scopes: [...(entry.scopes ?? [])] } : undefined
  }

  /** True while a key with this hash is configured. */
  has (hash: string): boolean {
    return this.keys.has(hash)
  }

  get size (): number {
    return this.keys.size
  }
}
