/** prom-client's default buckets, in seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** One label set's counts: per bucket (not cumulative), sum and count. */
class Series {
  readonly counts = new Array<number>(BUCKETS.length).fill(0)
  sum = 0
  count = 0

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
 * A Prometheus histogram with the labels `method`, `route` and `status_code`, whose series are
 * kept in route → method → status maps: the route and method strings are the same objects on
 * every request (their hashes are cached), where a joined key would be a new string to hash, so
 * an observation is three map lookups, a bucket search and three additions. prom-client's
 * Histogram validates and hashes the labels on every observation (a few microseconds, measured
 * per proxied request). Bounded by the caller: registered routes, their methods and status codes.
 * It registers with a prom-client Registry like any metric and renders the same text
 * (`_bucket{le}` cumulative, `_sum`, `_count`).
 */
export class RouteHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly byRoute = new Map<string, Map<string, Map<number, Series>>>()

  constructor (readonly name: string, readonly help: string) {}

  /** The series of one route, method and status, created on first use. */
  series (route: string, method: string, status: number): Series {
    let methods = this.byRoute.get(route)
    if (methods === undefined) this.byRoute.set(route, methods = new Map())
    let statuses = methods.get(method)
    if (statuses === undefined) methods.set(method, statuses = new Map())
    let series = statuses.get(status)
    if (series === undefined) statuses.set(status, series = new Series({ method, route, status_code: String(status) }))
    return series
  }

  get (): { name: string, help: string, type: string, aggregator: string, values: MetricValue[] } {
    const values: MetricValue[] = []
    for (const methods of this.byRoute.values()) {
      for (const statuses of methods.values()) {
        for (const s of statuses.values()) this.render(s, values)
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  private render (s: Series, values: MetricValue[]): void {
    let cumulative = 0
    BUCKETS.forEach((le, i) => {
      cumulative += s.counts[i]
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: cumulative })
    })
    values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count })
    values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum })
    values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count })
  }

  /** Drops every series (prom-client's resetMetrics): the next observation starts a new one. */
  reset (): void {
    this.byRoute.clear()
  }
}
