interface Window { count: number, startMs: number }

/** Most client buckets held at once; the least recently used is dropped first, so memory stays bounded. */
export const MAX_BUCKETS = 10_000

/** One hit's outcome: the count in the current window and the milliseconds until it resets. */
export interface Hit { count: number, resetMs: number }

/**
 * Fixed-window counters, one per key (client address + gateway route). All routes of one
 * gateway route (its HTTP and WebSocket routes) share a key, so they share one budget.
 * Synchronous: counting a request costs a map lookup, not a promise.
 */
export class WindowCounter {
  private readonly windows = new Map<string, Window>()

  constructor (private readonly maxBuckets = MAX_BUCKETS) {}

  hit (key: string, windowMs: number, now = Date.now()): Hit {
    let w = this.windows.get(key)
    if (w !== undefined) this.windows.delete(key)
    if (w === undefined || w.startMs + windowMs <= now) w = { count: 0, startMs: now }
    w.count++
    // Re-inserted on every hit, so the map's order is least recently used first.
    this.windows.set(key, w)
    if (this.windows.size > this.maxBuckets) this.windows.delete(this.windows.keys().next().value as string)
    return { count: w.count, resetMs: w.startMs + windowMs - now }
  }

  get size (): number {
    return this.windows.size
  }
}
