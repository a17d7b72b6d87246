/** One client's window: requests counted in it and when it started. */
export interface Window { readonly count: number, readonly startMs: number }

interface MutableWindow { count: number, startMs: number }

/** Most client buckets held at once per counter; the oldest window is dropped first, so memory stays bounded. */
export const MAX_BUCKETS = 10_000

/**
 * Fixed-window counters, one per key (the client address), for one limit: all routes of one
 * gateway route (its HTTP and WebSocket routes) share a counter, so they share one budget.
 * Synchronous, and a hit inside a running window is one map lookup and an increment: the
 * map is reordered only when a window starts, so its first entry is always the window that
 * started longest ago (the nearest to its reset, whose loss forgets the least) and is the
 * one dropped past `maxBuckets`.
 */
export class WindowCounter {
  private readonly windows = new Map<string, MutableWindow>()

  constructor (readonly windowMs: number, private readonly maxBuckets = MAX_BUCKETS) {}

  /** Counts one request of `key`; the window returned is the counter's own, read it at once. */
  hit (key: string, now = Date.now()): Window {
    let w = this.windows.get(key)
    if (w === undefined || w.startMs + this.windowMs <= now) {
      if (w !== undefined) this.windows.delete(key)
      w = { count: 0, startMs: now }
      this.windows.set(key, w)
      if (this.windows.size > this.maxBuckets) this.windows.delete(this.windows.keys().next().value as string)
    }
    w.count++
    return w
  }

  /** Milliseconds until `w` ends. */
  resetMs (w: Window, now = Date.now()): number {
    return w.startMs + this.windowMs - now
  }

  get size (): number {
    return this.windows.size
  }
}
