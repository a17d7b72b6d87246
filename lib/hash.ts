import * as crypto from 'node:crypto'

type OneShot = (algorithm: string, data: string, encoding: 'hex' | 'buffer') => string | Buffer
/** Node's one-shot hash (20.12+) skips the Hash object that a per-request key check would build. */
const oneShot = (crypto as { hash?: OneShot }).hash

/** sha256 of a UTF-8 string, as lowercase hex (config `*_sha256` values, API key lookups). */
export function sha256Hex (text: string): string {
  return oneShot !== undefined ? oneShot('sha256', text, 'hex') as string : crypto.createHash('sha256').update(text).digest('hex')
}

/** sha256 of a UTF-8 string, as 32 bytes (constant-time comparisons with `timingSafeEqual`). */
export function sha256Digest (text: string): Buffer {
  return oneShot !== undefined ? oneShot('sha256', text, 'buffer') as Buffer : crypto.createHash('sha256').update(text).digest()
}
