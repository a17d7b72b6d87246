/**
 * The token of an `Authorization: Bearer <token>` header: the scheme in any case (RFC 9110
 * §11.1), one or more spaces before the token and any after it; undefined for anything else.
 * Written out rather than as `/^Bearer +(\S+) *$/i`: a gateway access token is 200-300
 * characters, and that expression walked every one of them on each `auth: required` request
 * (callgrind counted it at 4,000 instructions a request, a fifth of what the route's auth cost).
 * Only spaces delimit here; a token with another whitespace character in it is passed on and
 * refused by its verifier, as any malformed token is.
 */
export function bearerToken (header: string | undefined): string | undefined {
  if (header === undefined || header.length < 8 || header.charCodeAt(6) !== 0x20) return undefined
  const scheme = header.slice(0, 6)
  if (scheme !== 'Bearer' && scheme.toLowerCase() !== 'bearer') return undefined
  let start = 7
  while (header.charCodeAt(start) === 0x20) start++
  let end = header.length
  while (end > start && header.charCodeAt(end - 1) === 0x20) end--
  if (start === end) return undefined
  const token = header.slice(start, end)
  return token.includes(' ') ? undefined : token
}
