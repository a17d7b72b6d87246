import fp from 'fastify-plugin'
import httpProxy from '@fastify/http-proxy'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { RouteConfig } from '../schemas/config.js'
import { BadPathError, UpstreamTimeoutError, UpstreamUnavailableError } from '../lib/errors.js'
import { isUnsafePath } from '../lib/paths.js'
import { connectUpstream, link, UpstreamConnectError, type PendingUpstream } from '../lib/ws-proxy.js'
import { identityHeaders } from '../lib/auth/principal.js'
import { IDENTITY_HEADERS } from './route-auth.js'

/** Request headers that describe this hop only and never go upstream (RFC 9110 §7.6.1). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']
/** Headers the WebSocket client library sets itself for the upstream handshake. */
const WS_HANDSHAKE = ['host', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'sec-websocket-accept', 'content-length']
const kPendingUpstream = Symbol('pendingUpstream')

type Headers = Record<string, string | string[] | undefined>

/** What the gateway adds for the upstream: forwarded-for chain, proto, host, request id. */
function forwardedHeaders (request: FastifyRequest, headers: Headers): Headers {
  // Names listed in Connection are hop-by-hop too.
  const connection = request.headers.connection
  if (typeof connection === 'string') {
    for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()]
  }
  for (const name of HOP_BY_HOP) delete headers[name]
  for (const name of IDENTITY_HEADERS) delete headers[name]
  // An authenticated request goes up with the gateway's identity headers instead of the credential it used.
  if (request.principal !== null) {
    delete headers.authorization
    delete headers['x-api-key']
    Object.assign(headers, identityHeaders(request.principal))
  }
  const prior = request.headers['x-forwarded-for']
  const ip = request.ip
  headers['x-forwarded-for'] = typeof prior === 'string' && prior !== '' ? `${prior}, ${ip}` : ip
  headers['x-forwarded-proto'] = request.protocol
  if (request.headers.host !== undefined) headers['x-forwarded-host'] = request.headers.host
  headers['x-request-id'] = request.id
  return headers
}

function responseHeaders (headers: Headers): Headers {
  for (const name of HOP_BY_HOP) delete headers[name]
  return headers
}

function upstreamError (route: RouteConfig, error: Error & { code?: string }): Error {
  const code = error.code ?? ''
  const cause = (error.cause as { code?: string } | undefined)?.code ?? ''
  if (code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' || cause === 'UND_ERR_HEADERS_TIMEOUT' || cause === 'UND_ERR_BODY_TIMEOUT') {
    return new UpstreamTimeoutError(route.timeoutMs)
  }
  return new UpstreamUnavailableError(cause !== '' ? cause : (code !== '' ? code : error.message))
}

async function refuseUnsafePath (request: FastifyRequest): Promise<void> {
  if (isUnsafePath(request.url)) throw new BadPathError('dot segments, backslashes and encoded separators are refused')
}

/** The upstream WebSocket URL for a request under the route's prefix. */
function wsTarget (route: RouteConfig, url: string): string {
  const base = route.upstream.replace(/^http/, 'ws')
  const rest = url.slice(route.prefix === '/' ? 0 : route.prefix.length)
  const rewrite = route.rewritePrefix.endsWith('/') ? route.rewritePrefix.slice(0, -1) : route.rewritePrefix
  const path = rest === '' || rest.startsWith('?') ? `${rewrite === '' ? '/' : rewrite}${rest}` : `${rewrite}${rest}`
  return base + path
}

function registerWebSocketRoute (scope: FastifyInstance, route: RouteConfig, rateLimit: object | undefined): void {
  const openUpstream = async (request: FastifyRequest): Promise<void> => {
    const headers = forwardedHeaders(request, { ...request.headers })
    for (const name of WS_HANDSHAKE) delete headers[name]
    const protocolHeader = request.headers['sec-websocket-protocol']
    const protocols = typeof protocolHeader === 'string' ? protocolHeader.split(',').map(p => p.trim()).filter(p => p !== '') : []
    let pending: PendingUpstream
    try {
      pending = await connectUpstream(wsTarget(route, request.url), {
        headers: headers as Record<string, string>,
        protocols,
        timeoutMs: route.timeoutMs,
        maxPayload: scope.config.maxFrameBytes
      })
    } catch (err) {
      const timedOut = err instanceof UpstreamConnectError && err.timedOut
      throw timedOut ? new UpstreamTimeoutError(route.timeoutMs) : new UpstreamUnavailableError((err as Error).message)
    }
    // If the client's upgrade fails or it leaves before the link is made, the upstream goes too.
    const raw = request.raw.socket
    const drop = (): void => { if (!linked.has(pending)) pending.socket.terminate() }
    raw.once('close', drop)
    ;(request as unknown as Record<symbol, unknown>)[kPendingUpstream] = pending
  }
  const linked = new WeakSet<PendingUpstream>()

  const handler = (client: WebSocket, request: FastifyRequest): void => {
    const pending = (request as unknown as Record<symbol, PendingUpstream>)[kPendingUpstream]
    linked.add(pending)
    const connection = scope.connections.open({ kind: 'ws_proxy', route: route.prefix, remoteAddress: request.ip, principal: request.principal ?? undefined })
    const controls = link(client, pending, {
      log: request.log,
      pauseBufferBytes: scope.config.pauseBufferBytes,
      traffic: connection,
      onClose: () => { connection.close() }
    })
    connection.attach(controls)
    // The route's auth hook ran before the upgrade: authorizing is already done.
    connection.transition('authorizing')
    connection.transition('running')
  }

  for (const url of route.prefix === '/' ? ['/', '/*'] : [route.prefix, `${route.prefix}/*`]) {
    scope.route({
      method: 'GET',
      url,
      constraints: { upgrade: 'websocket' },
      exposeHeadRoute: false,
      config: rateLimit !== undefined ? { rateLimit } : {},
      preHandler: openUpstream,
      websocket: true,
      handler: handler as never
    })
  }
}

async function registerRoute (fastify: FastifyInstance, route: RouteConfig): Promise<void> {
  await fastify.register(async (scope) => {
    scope.addHook('onRequest', refuseUnsafePath)
    if (route.auth === 'required') scope.addHook('preHandler', fastify.requireAuth)
    const rateLimit = fastify.rateLimitFor(route.prefix, route.rateLimit)

    await scope.register(httpProxy, {
      upstream: route.upstream,
      prefix: route.prefix === '/' ? '' : route.prefix,
      rewritePrefix: route.rewritePrefix,
      websocket: false,
      config: rateLimit !== undefined ? { rateLimit } : {},
      undici: {
        connections: 128,
        pipelining: 1,
        keepAliveTimeout: 60_000,
        headersTimeout: route.timeoutMs,
        bodyTimeout: route.timeoutMs
      },
      replyOptions: {
        rewriteRequestHeaders: (request, headers) => forwardedHeaders(request as FastifyRequest, headers as Headers) as never,
        rewriteHeaders: (headers) => responseHeaders(headers as Headers) as never,
        onError: (reply, { error }) => {
          (reply as FastifyReply).send(upstreamError(route, error))
        }
      }
    })
    if (route.websocket) registerWebSocketRoute(scope, route, rateLimit)
  })
}

/** Every `routes:` entry of the config becomes its own @fastify/http-proxy registration. */
export default fp(async (fastify) => {
  for (const route of fastify.config.routes) {
    await registerRoute(fastify, route)
    fastify.log.debug({ prefix: route.prefix, upstream: route.upstream, websocket: route.websocket }, 'proxy route registered')
  }
}, { name: 'proxy', dependencies: ['config', 'errors', 'rate-limit', 'websocket', 'route-auth', 'registry'] })
