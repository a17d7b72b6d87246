const MAX_DECODE_ROUNDS = 3

/**
 * True when a request path could step outside the prefix it was matched under:
 * dot segments, backslashes or NUL, raw or percent-encoded (also double-encoded,
 * since an upstream may decode once more), or an encoding that does not decode.
 */
export function isUnsafePath (rawUrl: string): boolean {
  let path = rawUrl.split('?', 1)[0]
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    if (path.includes('\\') || path.includes('\0')) return true
    if (path.split('/').some(seg => seg === '.' || seg === '..')) return true
    if (!path.includes('%')) return false
    try {
      path = decodeURIComponent(path)
    } catch {
      return true
    }
  }
  return path.includes('%')
}
