import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import { Counter } from 'prom-client'
import { ApiKeyStore } from '../lib/auth/api-keys.js'
import { AuthCache } from '../lib/auth/cache.js'
import { ExternalJwtVerifier } from '../lib/auth/external-jwt.js'
import { Authenticator } from '../lib/auth/index.js'
import type { JwtCodec } from '../lib/auth/jwt.js'
import { readPemKey } from '../lib/auth/keys.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every authentication method, the gateway's token pairs and re-checks (see lib/auth/index.ts). */
    authenticator: Authenticator
    /** `httvps_gateway_token_refresh_total{result}`: refresh-token exchanges, and /ws sessions re-authorized when their token expires. */
    tokenRefreshes: Counter<'result'>
  }
}

export default fp(async (fastify) => {
  const { config, promRegistry } = fastify
  const registers = [promRegistry]
  const hits = new Counter({ name: 'httvps_gateway_auth_cache_hits_total', help: 'Credential checks answered from the auth cache', registers })
  const misses = new Counter({ name: 'httvps_gateway_auth_cache_misses_total', help: 'Credential checks the auth cache could not answer', registers })
  const refreshes = new Counter({
    name: 'httvps_gateway_token_refresh_total',
    help: 'Refresh token exchanges by result (ok, invalid, expired, reused, refused, error)',
    labelNames: ['result'] as const,
    registers
  })

  let externalJwt: ExternalJwtVerifier | undefined
  const external = config.externalJwt
  if (external !== undefined) {
    const key = external.secret ?? { public: readPemKey(external.publicKeyPath as string, 'external_jwt.public_key_path', external.algorithms[0], 'public') }
    // Every listed algorithm must suit the one key (config load checks the family; this checks EC curves and the like).
    if (typeof key === 'object') for (const alg of external.algorithms) readPemKey(external.publicKeyPath as string, 'external_jwt.public_key_path', alg, 'public')
    await fastify.register(fastifyJwt, {
      namespace: 'external',
      secret: key,
      verify: {
        algorithms: external.algorithms as never,
        requiredClaims: ['exp', 'sub'],
        ...(external.issuer !== undefined ? { allowedIss: external.issuer } : {}),
        ...(external.audience !== undefined ? { allowedAud: external.audience } : {})
      }
    })
    const codec = fastify.jwt.external as unknown as JwtCodec
    externalJwt = new ExternalJwtVerifier({ sign: () => { throw new Error('verify only') }, verify: (token) => codec.verify(token) }, external.algorithms)
  }

  const authenticator = new Authenticator({
    deviceAuth: fastify.deviceAuth,
    apiKeys: new ApiKeyStore(config.apiKeys),
    externalJwt,
    tokens: fastify.tokens.access,
    refresh: fastify.tokens.refresh,
    cache: new AuthCache({ max: config.authCache.max, ttlMs: config.authCache.ttlMs, onHit: () => hits.inc(), onMiss: () => misses.inc() }),
    log: fastify.log.child({ component: 'auth' }),
    onRefresh: (result) => refreshes.inc({ result })
  })
  fastify.decorate('authenticator', authenticator)
  fastify.decorate('tokenRefreshes', refreshes)
}, { name: 'auth', dependencies: ['config', 'metrics', 'device-auth', 'tokens'] })
