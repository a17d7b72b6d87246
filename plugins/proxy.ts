import fp from 'fastify-plugin'
import type { FastifyContextConfig, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { RouteConfig } from '../schemas/config.js'
import type { Socket } from 'node:net'
import { BadPathError, BadRequestError, CloseCode, UpgradeRequiredError, UpstreamTimeoutError, UpstreamUnavailableError } from '../lib/errors.js'
import { isUnsafePath } from '../lib/paths.js'
import { acceptClient, connectUpstream, upgradeHead, UpstreamConnectError, type OpenUpstream } from '../lib/ws-proxy.js'
import { Relay, type RelayControls } from '../lib/ws-relay.js'
import { detachUpgradeResponse } from '../lib/ws-upgrade.js'
import { isValidKey } from '../lib/ws-frames.js'
import type { Connection } from '../lib/registry.js'
import type { Principal, ReauthResult } from '../lib/auth/principal.js'
import { HttpForwarder } from '../lib/http-forward.js'
import { identityHeaders } from '../lib/auth/principal.js'
import { IDENTITY_HEADERS } from './route-auth.js'

/** Request headers that describe this hop only and never go upstream (RFC 9110 §7.6.1), and client-sent identity. */
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', ...IDENTITY_HEADERS])
/** undici sets Host from the upstream origin (like nginx's default; the client's goes in x-forwarded-host) and refuses `expect`. */
const HTTP_SKIP = new Set(['host', 'expect'])
/** Headers of the client's handshake that the gateway's own upstream handshake replaces. */
const WS_SKIP = new Set(['host', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'sec-websocket-accept', 'content-length'])
type Headers = Record<string, string | string[] | undefined>

/** Names a client lists in Connection are hop-by-hop too; the usual values name no header. */
function connectionListed (connection: string | undefined): Set<string> | undefined {
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') return undefined
  return new Set(connection.split(',').map(name => name.trim().toLowerCase()))
}

/**
 * The upstream request headers, built in one pass over the client's: hop-by-hop,
 * client-sent identity and `skip` names dropped; then the gateway's identity headers
 * (in place of the credential used), forwarded-for chain, proto, host and request id.
 */
function forwardedHeaders (request: FastifyRequest, skip: Set<string>): Headers {
  const src = request.headers
  const listed = connectionListed(src.connection)
  const principal = request.principal
  const out: Headers = {}
  for (const name in src) {
    if (DROP.has(name) || skip.has(name) || listed?.has(name) === true) continue
    if (principal !== null && (name === 'authorization' || name === 'x-api-key')) continue
    out[name] = src[name]
  }
  if (principal !== null) Object.assign(out, identityHeaders(principal))
  const prior = src['x-forwarded-for']
  const ip = request.ip
  out['x-forwarded-for'] = typeof prior === 'string' && prior !== '' ? `${prior}, ${ip}` : ip
  out['x-forwarded-proto'] = request.protocol
  if (src.host !== undefined) out['x-forwarded-host'] = src.host
  out['x-request-id'] = request.id
  return out
}

function upstreamRequestHeaders (request: FastifyRequest): Headers {
  return forwardedHeaders(request, HTTP_SKIP)
}

/**
 * The onRequest check of one route's paths: no traversal, and the prefix written as it is.
 * The router matches a percent-encoded prefix (`/%61pi/x` under `/api`), but the upstream path
 * is the raw URL after the prefix, so such a request would reach a different upstream path.
 */
function refuseUnsafePath (prefix: string) {
  return function checkPath (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
    const url = request.url
    const next = url.charCodeAt(prefix.length)
    if (!url.startsWith(prefix) || !(Number.isNaN(next) || next === 0x2f || next === 0x3f)) {
      done(new BadPathError('the route prefix must be written as it is, not percent-encoded'))
    } else if (isUnsafePath(url)) {
      done(new BadPathError('dot segments, backslashes and encoded separators are refused'))
    } else {
      done()
    }
  }
}

/** The rewrite prefix without trailing slashes (`''` for the upstream root). */
function rewriteBase (route: RouteConfig): string {
  return route.rewritePrefix.replace(/\/+$/, '')
}

/**
 * The route's mapping from a request URL to the upstream path (and query): the prefix replaced
 * by `rewritePrefix`, as @fastify/http-proxy does (`/api` and `/api/` go to `/`, `/api/x?q` to
 * `/x?q`). Traversal was refused before (`refuseUnsafePath`), so the rest is never normalised here.
 */
function upstreamPaths (route: RouteConfig): (url: string) => string {
  const rewrite = rewriteBase(route)
  const root = rewrite === '' ? '/' : rewrite
  const prefixLength = route.prefix.length
  return (url) => {
    const rest = url.slice(prefixLength)
    return rest === '' || rest.startsWith('?') ? `${root}${rest}` : `${rewrite}${rest}`
  }
}

/** A route's URLs: `prefix/` explicitly, since a `prefix/*` route does not match it. */
function routeUrls (prefix: string): string[] {
  return [prefix, `${prefix}/`, `${prefix}/*`]
}

/** The methods @fastify/http-proxy proxies by default. */
const HTTP_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']

/** Request bodies are not parsed: the forwarder streams the raw request upstream. */
function passBody (_request: FastifyRequest, payload: unknown, done: (err: Error | null, body?: unknown) => void): void {
  done(null, payload)
}

/** Checks the client's handshake before an upstream is dialled: the key and version of RFC 6455 §4.2.1. */
function clientKey (request: FastifyRequest): string {
  if (!request.ws) throw new BadRequestError('not a WebSocket upgrade')
  if (request.headers['sec-websocket-version'] !== '13') throw new UpgradeRequiredError(request.url)
  const key = request.headers['sec-websocket-key']
  if (!isValidKey(key)) throw new BadRequestError('missing or invalid Sec-WebSocket-Key')
  return key
}

function registerWebSocketRoute (scope: FastifyInstance, route: RouteConfig, config: FastifyContextConfig, upstreamPath: (url: string) => string): void {
  /**
   * The route's last preHandler does the whole upgrade: it dials the upstream (a failure is
   * still an HTTP 502/504 to the client), then takes the client socket from Fastify
   * (`reply.hijack()`, so the @fastify/websocket handler never runs) and relays bytes.
   */
  const relayUpgrade = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const key = clientKey(request)
    const headers = forwardedHeaders(request, WS_SKIP)
    const protocolHeader = request.headers['sec-websocket-protocol']
    const protocols = typeof protocolHeader === 'string' ? protocolHeader.split(',').map(p => p.trim()).filter(p => p !== '') : []
    let upstream: OpenUpstream
    try {
      upstream = await connectUpstream(route.upstream + upstreamPath(request.url), { headers, protocols, timeoutMs: route.timeoutMs })
    } catch (err) {
      const timedOut = err instanceof UpstreamConnectError && err.timedOut
      throw timedOut ? new UpstreamTimeoutError(route.timeoutMs) : new UpstreamUnavailableError((err as Error).message)
    }
    reply.hijack()
    // Nothing answers over HTTP from here: the relay keeps neither the request nor its response (lib/ws-upgrade.ts).
    detachUpgradeResponse(reply.raw)
    const socket = request.raw.socket
    // The client left while the upstream was dialled.
    if (socket.destroyed || !socket.writable) {
      upstream.socket.destroy()
      return
    }
    acceptClient(socket, key, upstream.protocol, { ...reply.getHeaders(), 'x-request-id': request.id })
    startRelay(scope, route, request, socket, upstream)
  }

  for (const url of routeUrls(route.prefix)) {
    scope.route({
      method: 'GET',
      url,
      constraints: { upgrade: 'websocket' },
      exposeHeadRoute: false,
      config,
      preHandler: relayUpgrade,
      // Declared a WebSocket route for @fastify/websocket, but never reached: relayUpgrade hijacks the reply.
      websocket: true,
      handler: ((client: WebSocket) => { client.terminate() }) as never
    })
  }
}

function startRelay (scope: FastifyInstance, route: RouteConfig, request: FastifyRequest, socket: Socket, upstream: OpenUpstream): void {
  const connection = scope.connections.open({ kind: 'ws_proxy', route: route.prefix, remoteAddress: request.ip, principal: request.principal ?? undefined })
  const relay = new Relay(socket, upstream.socket, {
    log: request.log,
    maxMessageBytes: scope.config.maxFrameBytes,
    pauseBufferBytes: scope.config.pauseBufferBytes,
    traffic: connection,
    onClose: () => {
      scope.websocketRelays.delete(relay)
      expiry?.()
      connection.close()
    }
  })
  // The route's auth hook ran before the upgrade: authorizing is already done.
  connection.transition('authorizing')
  connection.transition('running')
  const principal = request.principal
  const expiry = principal?.expires_at !== undefined ? watchExpiry(scope, connection, relay, principal) : undefined
  connection.attach(relay)
  scope.websocketRelays.add(relay)
  relay.start(upgradeHead(request.raw), upstream.head)
  // Its upstream answered after shutdown began: it is told at once, like the others were.
  if (scope.websocketShuttingDown) relay.stop(CloseCode.GOING_AWAY, 'server shutting down')
}

/** Retry delay when the authority cannot be asked at expiry. */
const RECHECK_RETRY_MS = 30_000

/**
 * A proxied WebSocket lives past the credential it was opened with; when that credential
 * expires, the principal is re-checked by its original method (a device is asked afresh).
 * Refused: closed 1008 `auth_revoked`; a JWT that only the client could renew: 1008
 * `token_expired` (a proxied socket has no in-band refresh). One timer per connection;
 * the returned function clears it.
 */
function watchExpiry (scope: FastifyInstance, connection: Connection, controls: RelayControls, first: Principal): () => void {
  let principal = first
  let timer: NodeJS.Timeout | undefined
  let cleared = false
  const schedule = (ms: number): void => {
    // A check that was under way when the connection closed schedules nothing more.
    if (cleared) return
    timer = setTimeout(() => { check().catch(() => {}) }, Math.max(ms, 0))
    timer.unref()
  }
  const check = async (): Promise<void> => {
    if (connection.state === 'running') connection.transition('refreshing')
    let result: ReauthResult
    try {
      result = await scope.authenticator.reauthorize(principal)
    } catch (err) {
      scope.log.warn({ err, connection_id: connection.id }, 'proxied websocket re-check failed; retrying')
      if (connection.state === 'refreshing') connection.transition('running')
      schedule(Math.min(scope.config.tokens.accessTtlMs, RECHECK_RETRY_MS))
      return
    }
    if (connection.state === 'closed' || connection.state === 'stopping') return
    if (result.status === 'allowed') {
      principal = result.principal
      connection.authorize(principal)
      if (connection.state === 'refreshing') connection.transition('running')
      schedule(scope.config.tokens.accessTtlMs)
      return
    }
    controls.stop(CloseCode.POLICY_VIOLATION, result.status === 'refused' ? 'auth_revoked' : 'token_expired')
  }
  schedule((first.expires_at as number) - Date.now())
  return () => {
    cleared = true
    clearTimeout(timer)
  }
}

async function registerRoute (fastify: FastifyInstance, route: RouteConfig): Promise<void> {
  await fastify.register(async (scope) => {
    scope.addHook('onRequest', refuseUnsafePath(route.prefix))
    if (route.auth === 'required') scope.addHook('preHandler', fastify.requireAuth)
    const rateLimit = fastify.rateLimitFor(route.prefix, route.rateLimit)
    // The route's HTTP and WebSocket routes share one rate-limit bucket per client.
    const config: FastifyContextConfig = rateLimit !== undefined ? { rateLimit } : {}
    const upstreamPath = upstreamPaths(route)

    const forwarder = new HttpForwarder({
      origin: route.upstream,
      timeoutMs: route.timeoutMs,
      prefix: route.prefix,
      rewritePrefix: rewriteBase(route),
      requestHeaders: upstreamRequestHeaders
    })
    scope.addHook('onClose', async () => { await forwarder.close() })

    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', passBody)
    for (const url of routeUrls(route.prefix)) {
      scope.route({
        method: HTTP_METHODS,
        url,
        exposeHeadRoute: false,
        config,
        handler: (request, reply) => { forwarder.forward(request, reply, upstreamPath(request.url)) }
      })
    }
    if (route.websocket) registerWebSocketRoute(scope, route, config, upstreamPath)
  })
}

/**
 * Every `routes:` entry of the config becomes its own encapsulated plugin: the HTTP routes
 * and options of @fastify/http-proxy (prefix, rewritePrefix, all methods on `prefix`,
 * `prefix/` and `prefix/*`, bodies streamed unparsed), with the upstream request made by
 * lib/http-forward.ts. http-proxy itself is no longer registered: per request it re-checked
 * the path with three `new URL()` and parsed the query, work the gateway's own path check
 * already covers, and `npm run bench -- http` showed it as the largest cost left after
 * reply-from had been replaced.
 */
export default fp(async (fastify) => {
  for (const route of fastify.config.routes) {
    await registerRoute(fastify, route)
    fastify.log.debug({ prefix: route.prefix, upstream: route.upstream, websocket: route.websocket }, 'proxy route registered')
  }
}, { name: 'proxy', dependencies: ['config', 'errors', 'rate-limit', 'websocket', 'route-auth', 'registry'] })
