import fp from 'fastify-plugin'
import fastifyMetricsModule, { type IMetricsPluginOptions } from 'fastify-metrics'
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import promClient, { Registry } from 'prom-client'
import { RouteHistogram } from '../lib/route-histogram.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The one Prometheus registry: fastify-metrics' route metrics and the gateway's own metrics. */
    promRegistry: Registry
  }
}

/**
 * Each app owns its registry (never prom-client's global one), so several apps in one
 * process, as in tests, do not clash. Gateway metrics are counted even when the
 * endpoint is off; `GATEWAY_METRICS_ENABLED` only decides whether they are served.
 */
// fastify-metrics is CommonJS with `exports.default`; under NodeNext the import is the module object.
const fastifyMetrics = (fastifyMetricsModule as unknown as { default: FastifyPluginCallback<Partial<IMetricsPluginOptions>> }).default

/**
 * `http_request_duration_seconds{method,route,status_code}` for every registered route but the
 * metrics endpoint: the histogram fastify-metrics' route metrics would keep, recorded here
 * instead. fastify-metrics times each request with an onRequest hook (a WeakMap entry and a
 * timer closure) and prom-client hashes the label set on every observation; `npm run bench --
 * http` measured that at over 10% of the gateway's CPU per proxied request. Here one onResponse
 * hook reads Fastify's own `reply.elapsedTime` and observes the series of its route, method and
 * status (a bounded set: registered routes only).
 */
function routeDurations (fastify: FastifyInstance, registry: Registry, metricsPath: string): void {
  const histogram = new RouteHistogram('http_request_duration_seconds', 'request duration in seconds')
  registry.registerMetric(histogram as never)
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url
    if (route === undefined || route === metricsPath) return done()
    histogram.series(route, request.method, reply.statusCode).observe(reply.elapsedTime / 1000)
    done()
  })
}

export default fp(async (fastify) => {
  const registry = new Registry()
  fastify.decorate('promRegistry', registry)
  const { enabled, path } = fastify.config.metrics
  if (!enabled) return

  await fastify.register(fastifyMetrics, {
    promClient,
    endpoint: null,
    clearRegisterOnInit: false,
    defaultMetrics: { enabled: true, register: registry },
    routeMetrics: { enabled: false }
  })
  routeDurations(fastify, registry, path)

  fastify.get(path, { logLevel: 'warn', exposeHeadRoute: false }, async (_request: FastifyRequest, reply: FastifyReply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}, { name: 'metrics', dependencies: ['config'] })
