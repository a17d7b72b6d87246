import { createHmac, generateKeyPairSync, sign as cryptoSign } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Hand-made JWTs for attack tests: nothing here goes through a JWT library. */
export function segment (value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

export function now (): number {
  return Math.floor(Date.now() / 1000)
}

export function claims (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: 'user-1', iat: now(), exp: now() + 600, ...extra }
}

/** HS256/384/512 over `header.payload` with any key bytes (also a PEM public key, for the confusion attack). */
export function hmacToken (key: string | Buffer, payload: object, alg = 'HS256', header: object = {}): string {
  const input = `${segment({ alg, typ: 'JWT', ...header })}.${segment(payload)}`
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg] ?? 'sha256'
  return `${input}.${createHmac(hash, key).update(input).digest('base64url')}`
}

export function rsaToken (privatePem: string, payload: object, alg = 'RS256'): string {
  const input = `${segment({ alg, typ: 'JWT' })}.${segment(payload)}`
  return `${input}.${cryptoSign('sha256', Buffer.from(input), privatePem).toString('base64url')}`
}

/** `alg: none`, with an empty signature. */
export function unsignedToken (payload: object, alg = 'none'): string {
  return `${segment({ alg, typ: 'JWT' })}.${segment(payload)}.`
}

export interface KeyPair { privatePem: string, publicPem: string, privatePath: string, publicPath: string }

let cached: KeyPair | undefined

/** One RSA key pair per test process, written to a temp dir. */
export function rsaKeys (): KeyPair {
  if (cached !== undefined) return cached
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const dir = mkdtempSync(join(tmpdir(), 'gw-keys-'))
  const privatePath = join(dir, 'private.pem')
  const publicPath = join(dir, 'public.pem')
  writeFileSync(privatePath, privatePem)
  writeFileSync(publicPath, publicPem)
  cached = { privatePem, publicPem, privatePath, publicPath }
  return cached
}
