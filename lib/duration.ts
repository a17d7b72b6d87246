const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Parses `500ms`, `5s`, `1m`, `2h` or plain milliseconds (number or digits) into milliseconds. */
export function parseDuration (value: string | number): number {
  if (typeof value === 'number') return value
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value)
  if (match === null) throw new Error(`not a duration: ${value}`)
  return Math.round(Number(match[1]) * UNIT_MS[match[2] ?? 'ms'])
}
