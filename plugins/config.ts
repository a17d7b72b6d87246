import fp from 'fastify-plugin'
import { loadConfig } from '../lib/config.js'
import type { GatewayConfig } from '../schemas/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: GatewayConfig
  }
}

export interface ConfigPluginOptions {
  /** A resolved config (server.ts and tests pass one); otherwise it is loaded from the environment. */
  config?: GatewayConfig
}

// Loading config inside the app means a fastify-cli run gets the same config as `npm start`.
export default fp<ConfigPluginOptions>(async (fastify, opts) => {
  fastify.decorate('config', opts.config ?? loadConfig())
}, { name: 'config' })
