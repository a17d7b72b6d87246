const MAX_DECODE_ROUNDS = 3

function hasTraversal (path: string): boolean {
  return path.includes('\\') || path.includes('\0') || path.split('/').some(seg => seg === '.' || seg === '..')
}

/**
 * True when a request path could step outside the prefix it was matched under:
 * dot segments, backslashes or NUL, raw or percent-encoded (also encoded several
 * times over, since an upstream may decode again), or an encoding that does not decode.
 */
export function isUnsafePath (rawUrl: string): boolean {
  const query = rawUrl.indexOf('?')
  let path = query === -1 ? rawUrl : rawUrl.slice(0, query)
  // Most paths hold none of the characters that matter.
  if (!/[.%\\\0]/.test(path)) return false
  for (let round = 0; ; round++) {
    if (hasTraversal(path)) return true
    if (!path.includes('%')) return false
    if (round === MAX_DECODE_ROUNDS) return true
    try {
      path = decodeURIComponent(path)
    } catch {
      return true
    }
  }
}
