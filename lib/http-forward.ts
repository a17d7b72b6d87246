import { Pool, type Dispatcher } from 'undici'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'

/** Response headers that describe the upstream hop only. */
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer', 'te'])
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

export interface ForwarderOptions {
  /** The upstream origin, e.g. `http://127.0.0.1:9001`. */
  origin: string
  timeoutMs: number
  /** Gateway prefix and upstream rewrite prefix (no trailing `/`; `''` for the root), to map `Location` headers back. */
  prefix: string
  rewritePrefix: string
  /** Builds the upstream request headers (forwarded, identity, request id). */
  requestHeaders: (request: FastifyRequest) => Record<string, string | string[] | undefined>
  connections?: number
}

/**
 * Forwards one HTTP request upstream over a keep-alive undici Pool and writes the
 * answer straight to the client socket. It does the work of @fastify/reply-from in
 * @fastify/http-proxy's routes (plugins/proxy.ts): reply-from copies headers several times,
 * builds URLs and wraps the body in streams per request, and the profile showed that
 * as the proxy's main cost. Hooks still run: onResponse (metrics) fires on `finish`,
 * and headers set with `reply.header()` (rate limit) and the request id are written here.
 */
export class HttpForwarder {
  private readonly pool: Pool

  constructor (private readonly opts: ForwarderOptions) {
    this.pool = new Pool(opts.origin, {
      connections: opts.connections ?? 128,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connectTimeout: Math.min(opts.timeoutMs, 10_000)
    })
  }

  /** `path` is the rewritten upstream path with the query as the client sent it. */
  forward (request: FastifyRequest, reply: FastifyReply, path: string): void {
    reply.hijack()
    const raw = request.raw
    const method = request.method as Dispatcher.HttpMethod
    const hasBody = raw.headers['content-length'] !== undefined ? raw.headers['content-length'] !== '0' : raw.headers['transfer-encoding'] !== undefined
    const handler = new ResponseWriter(request, reply, this.opts)
    this.pool.dispatch({
      origin: this.opts.origin,
      path,
      method,
      headers: this.opts.requestHeaders(request) as Record<string, string>,
      body: hasBody ? raw : null
    }, handler)
  }

  async close (): Promise<void> {
    await this.pool.close()
  }
}

/**
 * A `Location` under the upstream's rewrite prefix, mapped back under the gateway's prefix
 * (`/v2/x` → `/api/x`), like nginx's `proxy_redirect default`: a path, or an absolute URL at the
 * upstream's own origin (which would otherwise send the client to an address only the gateway
 * can reach). Only whole segments match (`/v2x` is left alone); other URLs and relative paths
 * pass unchanged. `upstream` is the origin (`http://host:port`), `rewritePrefix` has no
 * trailing `/` (`''` for the upstream root).
 */
export function gatewayLocation (location: string, prefix: string, rewritePrefix: string, upstream = ''): string {
  let path = location
  if (upstream !== '' && location.length > upstream.length && location.slice(0, upstream.length).toLowerCase() === upstream.toLowerCase()) {
    path = location.slice(upstream.length)
    if (!path.startsWith('/')) return location
  }
  if (!path.startsWith('/') || path.startsWith('//') || !path.startsWith(rewritePrefix)) return location
  const rest = path.slice(rewritePrefix.length)
  const mapped = rest === '' || rest.startsWith('?') || rest.startsWith('#') || rest.startsWith('/') ? prefix + rest : undefined
  // A result that reads as `//host` would name another host: left as the upstream sent it.
  return mapped === undefined || mapped.startsWith('//') ? location : mapped
}

/** One upstream answer, written to the client with backpressure both ways. */
class ResponseWriter implements Dispatcher.DispatchHandler {
  private readonly res: ServerResponse
  private controller: Dispatcher.DispatchController | null = null

  constructor (private readonly request: FastifyRequest, private readonly reply: FastifyReply, private readonly opts: ForwarderOptions) {
    this.res = reply.raw
    // `on`, not `once`: a response closes once, and `once` would add a wrapper and a removeListener per request.
    this.res.on('close', () => {
      // The client left before the answer was complete: stop the upstream request too.
      if (!this.res.writableFinished) this.controller?.abort(new Error('client closed the connection'))
    })
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // Fastify's getHeaders() is a fresh object: the gateway's own headers (request id, rate
    // limit) go in first and win over the upstream's, without a second copy per request.
    const out = this.reply.getHeaders() as Record<string, string | string[] | number | undefined>
    for (const name in headers) {
      const value = headers[name]
      if (value === undefined || HOP_BY_HOP_RESPONSE.has(name) || Object.hasOwn(out, name)) continue
      out[name] = value
    }
    const location = headers.location
    if (typeof location === 'string' && out.location === location) out.location = gatewayLocation(location, this.opts.prefix, this.opts.rewritePrefix, this.opts.origin)
    out['x-request-id'] = this.request.id
    this.res.writeHead(statusCode, out as Record<string, string | string[] | number>)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.res.write(chunk)) return
    // Backpressure: the upstream is not read until the client has taken this chunk.
    controller.pause()
    this.res.once('drain', () => { controller.resume() })
  }

  onResponseEnd (): void {
    this.res.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, err: Error & { code?: string }): void {
    if (this.res.headersSent) {
      this.request.log.warn({ err }, 'upstream failed mid-response')
      this.res.destroy()
      return
    }
    if (this.res.destroyed) return
    const code = err.code ?? ''
    const error = TIMEOUT_CODES.has(code) ? new UpstreamTimeoutError(this.opts.timeoutMs) : new UpstreamUnavailableError(code !== '' ? code : err.message)
    this.request.log.warn({ err }, 'upstream request failed')
    const body = JSON.stringify(errorBody(error.code, error.message))
    const headers: Record<string, string | number | string[]> = { ...this.reply.getHeaders() as Record<string, string>, 'x-request-id': this.request.id, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }
    this.res.writeHead(error.statusCode as number, headers)
    this.res.end(body)
  }
}
