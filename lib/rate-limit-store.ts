interface Window { current: number, ttl: number, startMs: number }
type Callback = (err: Error | null, res: { current: number, ttl: number }) => void

/** Most client buckets held at once; the oldest is dropped first, so memory stays bounded. */
export const MAX_BUCKETS = 10_000

/**
 * A fixed-window store for @fastify/rate-limit whose children share one map.
 * The stock store gives every route registration its own counters, so `/api`,
 * `/api/*` and the WebSocket routes of one prefix would each get the full budget.
 * Here a gateway route is one bucket per client: keys carry the route's `groupId`.
 */
export class SharedWindowStore {
  private readonly windows: Map<string, Window>

  constructor (_params?: unknown, windows?: Map<string, Window>) {
    this.windows = windows ?? new Map()
  }

  incr (key: string, cb: Callback, timeWindow: number): void {
    const now = Date.now()
    let w = this.windows.get(key)
    if (w === undefined || w.startMs + timeWindow <= now) {
      w = { current: 0, ttl: timeWindow, startMs: now }
    }
    w.current++
    w.ttl = timeWindow - (now - w.startMs)
    // Re-insert so the map's order is least recently used first.
    this.windows.delete(key)
    this.windows.set(key, w)
    if (this.windows.size > MAX_BUCKETS) this.windows.delete(this.windows.keys().next().value as string)
    cb(null, { current: w.current, ttl: w.ttl })
  }

  read (key: string, cb: Callback, timeWindow: number): void {
    const w = this.windows.get(key)
    const now = Date.now()
    if (w === undefined || w.startMs + timeWindow <= now) cb(null, { current: 0, ttl: 0 })
    else cb(null, { current: w.current, ttl: timeWindow - (now - w.startMs) })
  }

  child (): SharedWindowStore {
    return new SharedWindowStore(undefined, this.windows)
  }

  get size (): number {
    return this.windows.size
  }
}
