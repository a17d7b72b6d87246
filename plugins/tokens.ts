import { randomBytes } from 'node:crypto'
import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import { GATEWAY_ISSUER, GatewayTokens } from '../lib/auth/gateway-tokens.js'
import type { JwtCodec } from '../lib/auth/jwt.js'
import { readPemKey } from '../lib/auth/keys.js'
import { RefreshStore } from '../lib/auth/refresh-store.js'
import type { Credential } from '../lib/auth/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The gateway's own access tokens (sign, verify) and its refresh-token store. */
    tokens: { access: GatewayTokens, refresh: RefreshStore<Credential> }
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    // Registered under namespaces, so `fastify.jwt` maps a namespace to its decorator.
    namespaces: 'gateway' | 'external'
  }
}

/** The signing key: the configured secret or key pair, else a random secret for this process only. */
function signingKey (fastify: FastifyInstance): string | { private: string, public: string } {
  const { secret, privateKeyPath, publicKeyPath, algorithm } = fastify.config.tokens
  if (privateKeyPath !== undefined && publicKeyPath !== undefined) {
    return {
      private: readPemKey(privateKeyPath, 'jwt_private_key_path (GATEWAY_JWT_PRIVATE_KEY_PATH)', algorithm, 'private'),
      public: readPemKey(publicKeyPath, 'jwt_public_key_path (GATEWAY_JWT_PUBLIC_KEY_PATH)', algorithm, 'public')
    }
  }
  if (secret !== undefined) return secret
  fastify.log.warn('no GATEWAY_JWT_SECRET or key pair is configured: using a random secret, so access tokens will not survive a restart')
  return randomBytes(48).toString('base64url')
}

export default fp(async (fastify) => {
  const { algorithm, accessTtlMs, refreshTtlMs, refreshStoreMax } = fastify.config.tokens
  await fastify.register(fastifyJwt, {
    namespace: 'gateway',
    secret: signingKey(fastify),
    sign: { algorithm: algorithm as never, iss: GATEWAY_ISSUER, aud: GATEWAY_ISSUER, expiresIn: accessTtlMs / 1000 },
    verify: { algorithms: [algorithm as never], allowedIss: GATEWAY_ISSUER, allowedAud: GATEWAY_ISSUER, requiredClaims: ['exp', 'sub', 'sid'] }
  })
  const codec = fastify.jwt.gateway as unknown as JwtCodec
  const access = new GatewayTokens({ sign: (payload) => codec.sign(payload), verify: (token) => codec.verify(token) }, algorithm, accessTtlMs)
  const refresh = new RefreshStore<Credential>({ ttlMs: refreshTtlMs, max: refreshStoreMax, revokedTtlMs: accessTtlMs })
  fastify.decorate('tokens', { access, refresh })

  const timer = setInterval(() => { refresh.sweep() }, Math.min(refreshTtlMs, 60_000))
  timer.unref()
  fastify.addHook('onClose', async () => { clearInterval(timer) })
}, { name: 'tokens', dependencies: ['config'] })
