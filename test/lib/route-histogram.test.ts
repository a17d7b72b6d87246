import { test } from 'tap'
import { Registry } from 'prom-client'
import { RouteHistogram } from '../../lib/route-histogram.js'

test('renders like a prom-client histogram: cumulative buckets, +Inf, sum and count per label set', async (t) => {
  const registry = new Registry()
  const h = new RouteHistogram('demo_seconds', 'a demo')
  registry.registerMetric(h as never)
  const get = h.series('/a', 'GET', 200)
  get.observe(0.003)
  get.observe(0.2)
  get.observe(60)
  t.equal(h.series('/a', 'GET', 200), get, 'the same series for the same route, method and status')
  h.series('/a', 'GET', 404).observe(0.001)
  const text = await registry.metrics()
  t.match(text, '# TYPE demo_seconds histogram')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",status_code="200",le="0.005"} 1')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",status_code="200",le="0.1"} 1')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",status_code="200",le="0.25"} 2')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",status_code="200",le="10"} 2')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",status_code="200",le="+Inf"} 3')
  t.match(text, 'demo_seconds_sum{method="GET",route="/a",status_code="200"} 60.203')
  t.match(text, 'demo_seconds_count{method="GET",route="/a",status_code="200"} 3')
  t.match(text, 'demo_seconds_count{method="GET",route="/a",status_code="404"} 1')
  t.notMatch(text, 'method="POST"', 'no series for what was never observed')

  registry.resetMetrics()
  t.notMatch(await registry.metrics(), 'demo_seconds_count', 'a reset drops every series')
  const again = h.series('/a', 'GET', 200)
  t.not(again, get, 'a new series after the reset')
  again.observe(0.5)
  t.match(await registry.metrics(), 'demo_seconds_count{method="GET",route="/a",status_code="200"} 1')
})
