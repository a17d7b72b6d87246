import fp from 'fastify-plugin'
import fastifyMetricsModule, { type IMetricsPluginOptions } from 'fastify-metrics'
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import promClient, { Registry } from 'prom-client'

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
    routeMetrics: {
      enabled: { histogram: true, summary: false },
      registeredRoutesOnly: true,
      groupStatusCodes: false,
      routeBlacklist: [path],
      overrides: { histogram: { registers: [registry] }, summary: { registers: [registry] } }
    }
  })

  fastify.get(path, { logLevel: 'warn', exposeHeadRoute: false }, async (_request: FastifyRequest, reply: FastifyReply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}, { name: 'metrics', dependencies: ['config'] })
