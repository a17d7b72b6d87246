import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError } from '../config.js'

/** The key types each asymmetric algorithm family needs. */
const KEY_TYPES: Record<string, string[]> = { RS: ['rsa'], PS: ['rsa', 'rsa-pss'], ES: ['ec'], Ed: ['ed25519', 'ed448'] }

/** Reads a PEM key file for `key`, refusing one that does not suit `algorithm`. */
export function readPemKey (path: string, key: string, algorithm: string, kind: 'public' | 'private'): string {
  let pem: string
  let object: KeyObject
  try {
    pem = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as Error).message}`)
  }
  try {
    object = kind === 'public' ? createPublicKey(pem) : createPrivateKey(pem)
  } catch {
    throw new ConfigError(key, `${path} is not a PEM ${kind} key`)
  }
  if (kind === 'public' && pem.includes('PRIVATE KEY')) throw new ConfigError(key, `${path} holds a private key; give the public key`)
  const wanted = KEY_TYPES[algorithm.slice(0, 2)] ?? []
  if (!wanted.includes(object.asymmetricKeyType ?? '')) {
    throw new ConfigError(key, `${path} is a ${object.asymmetricKeyType ?? 'unknown'} key, which does not suit ${algorithm}`)
  }
  return pem
}
