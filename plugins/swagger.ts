import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

const DOCS = '/docs'

/**
 * OpenAPI for the gateway's own typed routes, at /docs/json (and the Swagger UI at
 * /docs when `docs_ui` is on). Proxied routes have no schema and stay out of it.
 * Registered before routes/ so that @fastify/swagger sees every route being added.
 */
export default fp(async (fastify) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'httvps gateway', description: 'The gateway\'s own endpoints: health, tokens, administration.', version: '0.1.0' },
      tags: [
        { name: 'auth', description: 'Gateway access and refresh tokens' },
        { name: 'admin', description: 'Live connections and cached credentials (needs GATEWAY_ADMIN_TOKEN)' }
      ],
      components: {
        securitySchemes: {
          adminToken: { type: 'http', scheme: 'bearer', description: 'GATEWAY_ADMIN_TOKEN' },
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A gateway access token or an external JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' }
        }
      }
    },
    transform: ({ schema, url }) => ({ schema: schema ?? { hide: true }, url })
  })

  if (fastify.config.docsUi) {
    await fastify.register(swaggerUi, { routePrefix: DOCS, staticCSP: true })
    return
  }
  fastify.get(`${DOCS}/json`, { schema: { hide: true }, logLevel: 'warn' }, async () => fastify.swagger())
}, { name: 'swagger', dependencies: ['config'] })
