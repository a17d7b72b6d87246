/** prom-client's default buckets, in seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** One label set's counts: per bucket (not cumulative), sum and count. */
export class Series {
  readonly counts = new Array<number>(BUCKETS.length).fill(0)
  sum = 0
  count = 0
  /** False once the histogram was reset: a caller holding it looks it up again. */
  live = true

  constructor (readonly labels: Record<string, string>) {}

  observe (seconds: number): void {
    let i = 0
    while (i < BUCKETS.length && seconds > BUCKETS[i]) i++
    if (i < BUCKETS.length) this.counts[i]++
    this.sum += seconds
    this.count++
  }
}

interface MetricValue { metricName: string, labels: Record<string, string | number>, value: number }

/**
 * A Prometheus histogram whose label sets are looked up by the caller once and kept: an
 * observation is a bucket search and three additions. prom-client's Histogram validates and
 * hashes the labels on every observation (a few microseconds, measured per proxied request).
 * It registers with a prom-client Registry like any metric and renders the same text
 * (`_bucket{le}` cumulative, `_sum`, `_count`).
 */
export class RouteHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly all = new Map<string, Series>()

  constructor (readonly name: string, readonly help: string, private readonly labelNames: string[]) {}

  /** The series kept under `key` (the caller's name for a label set), if it was created. */
  find (key: string): Series | undefined {
    return this.all.get(key)
  }

  /** Creates the series of one label set (values in `labelNames` order) under `key`. */
  create (key: string, values: string[]): Series {
    const labels: Record<string, string> = {}
    this.labelNames.forEach((name, i) => { labels[name] = values[i] })
    const s = new Series(labels)
    this.all.set(key, s)
    return s
  }

  get (): { name: string, help: string, type: string, aggregator: string, values: MetricValue[] } {
    const values: MetricValue[] = []
    for (const s of this.all.values()) {
      let cumulative = 0
      BUCKETS.forEach((le, i) => {
        cumulative += s.counts[i]
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count })
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum })
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    for (const series of this.all.values()) series.live = false
    this.all.clear()
  }
}
