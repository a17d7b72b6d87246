import { test } from 'tap'
import { Registry } from 'prom-client'
import { RouteHistogram } from '../../lib/route-histogram.js'

test('renders like a prom-client histogram: cumulative buckets, +Inf, sum and count per label set', async (t) => {
  const registry = new Registry()
  const h = new RouteHistogram('demo_seconds', 'a demo', ['method', 'route'])
  registry.registerMetric(h as never)
  const get = h.create('GET /a', ['GET', '/a'])
  get.observe(0.003)
  get.observe(0.2)
  get.observe(60)
  t.equal(h.find('GET /a'), get)
  t.equal(h.find('POST /a'), undefined)
  const text = await registry.metrics()
  t.match(text, '# TYPE demo_seconds histogram')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",le="0.005"} 1')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",le="0.1"} 1')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",le="0.25"} 2')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",le="10"} 2')
  t.match(text, 'demo_seconds_bucket{method="GET",route="/a",le="+Inf"} 3')
  t.match(text, 'demo_seconds_sum{method="GET",route="/a"} 60.203')
  t.match(text, 'demo_seconds_count{method="GET",route="/a"} 3')
  registry.resetMetrics()
  t.notMatch(await registry.metrics(), 'demo_seconds_count')
  t.equal(get.live, false, 'a series dropped by a reset says so to whoever holds it')
  t.equal(h.find('GET /a'), undefined)
})
