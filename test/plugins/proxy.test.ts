import { test } from 'tap'
import { request } from 'undici'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { EventEmitter, once } from 'node:events'
import { buildGateway, rawRequest, startHttpUpstream } from '../helper.js'

test('GET and POST are proxied with the prefix stripped, bodies streamed both ways', async (t) => {
  const seen: Array<{ method?: string, url?: string, body: number }> = []
  const up = await startHttpUpstream(t, (req, res) => {
    let size = 0
    req.on('data', (c: Buffer) => { size += c.length })
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body: size })
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const chunk = Buffer.alloc(64 * 1024, 7)
        let left = 64
        const write = (): void => {
          while (left > 0) {
            left--
            if (!res.write(chunk)) { res.once('drain', write); return }
          }
          res.end()
        }
        write()
        return
      }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ method: req.method, url: req.url, size }))
    })
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })

  const get = await request(`${gw.url}/api/items?x=1&y=2`)
  t.equal(get.statusCode, 200)
  t.same(await get.body.json(), { method: 'GET', url: '/items?x=1&y=2', size: 0 })

  const root = await request(`${gw.url}/api`)
  t.same(await root.body.json(), { method: 'GET', url: '/', size: 0 })

  // 8 MiB upload, sent as a stream.
  const upload = Buffer.alloc(8 * 1024 * 1024, 1)
  const post = await request(`${gw.url}/api/upload`, { method: 'POST', body: upload, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(post.statusCode, 200)
  t.same(await post.body.json(), { method: 'POST', url: '/upload', size: upload.length })

  const json = await request(`${gw.url}/api/json`, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } })
  t.same(await json.body.json(), { method: 'POST', url: '/json', size: 7 })

  const big = await request(`${gw.url}/api/big`)
  let received = 0
  for await (const chunk of big.body) received += (chunk as Buffer).length
  t.equal(received, 64 * 64 * 1024)
})

test('every method and content type is proxied unparsed; the prefix alone and prefix/ reach the upstream root', async (t) => {
  const up = await startHttpUpstream(t, (req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      res.setHeader('x-seen', `${req.method ?? ''} ${req.url ?? ''} ${req.headers['content-type'] ?? '-'} ${body}`)
      res.end(req.method === 'HEAD' ? undefined : 'ok')
    })
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })
  const cases: Array<[string, string, string | undefined, string | undefined, string]> = [
    ['POST', '/api/text', 'text/plain', 'plain words', 'POST /text text/plain plain words'],
    ['PUT', '/api/form', 'application/x-www-form-urlencoded', 'a=1&b=2', 'PUT /form application/x-www-form-urlencoded a=1&b=2'],
    ['PATCH', '/api/odd?x=1', 'application/weird', '{not json', 'PATCH /odd?x=1 application/weird {not json'],
    ['POST', '/api/none', undefined, 'raw', 'POST /none - raw'],
    ['DELETE', '/api', undefined, undefined, 'DELETE / - '],
    ['OPTIONS', '/api/', undefined, undefined, 'OPTIONS / - '],
    ['HEAD', '/api?q=2', undefined, undefined, 'HEAD /?q=2 - ']
  ]
  for (const [method, path, type, body, seen] of cases) {
    const res = await request(`${gw.url}${path}`, { method, body, headers: type === undefined ? {} : { 'content-type': type } })
    t.equal(res.statusCode, 200, `${method} ${path}`)
    t.equal(res.headers['x-seen'], seen, `${method} ${path}`)
    await res.body.text()
  }
})

test('rewritePrefix maps the prefix onto the upstream path', async (t) => {
  const up = await startHttpUpstream(t, (req, res) => { res.end(req.url) })
  const gw = await buildGateway(t, { routes: [{ prefix: '/v1', upstream: up.url, rewritePrefix: '/internal/v1', auth: 'none' }] })
  t.equal(await (await request(`${gw.url}/v1/users/7`)).body.text(), '/internal/v1/users/7')
})

test('Location headers under the rewrite prefix come back under the gateway prefix', async (t) => {
  const up = await startHttpUpstream(t, (req, res) => {
    res.writeHead(302, { location: new URL(req.url ?? '/', 'http://x').searchParams.get('to') ?? '/' })
    res.end()
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url, rewritePrefix: '/v2/', auth: 'none' }] })
  const cases: Array<[string, string]> = [
    ['/v2/x', '/api/x'],
    ['/v2', '/api'],
    ['/v2?a=1', '/api?a=1'],
    ['/v2x', '/v2x'],
    ['/other', '/other'],
    ['http://elsewhere/v2/x', 'http://elsewhere/v2/x'],
    ['//elsewhere/v2/x', '//elsewhere/v2/x'],
    [`${up.url}/v2/y?z=1`, '/api/y?z=1'],
    [`${up.url}/elsewhere`, `${up.url}/elsewhere`]
  ]
  for (const [upstream, client] of cases) {
    const res = await request(`${gw.url}/api/go?to=${encodeURIComponent(upstream)}`)
    t.equal(res.statusCode, 302)
    t.equal(res.headers.location, client, upstream)
    await res.body.dump()
  }
})

test('Location mapping with the rewrite prefix taken from the upstream URL path', async (t) => {
  const up = await startHttpUpstream(t, (req, res) => {
    res.writeHead(301, { location: `${req.url ?? ''}-moved` })
    res.end()
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: `${up.url}/base/`, auth: 'none' }] })
  const res = await request(`${gw.url}/api/page`)
  t.equal(res.headers.location, '/api/page-moved', 'the upstream saw /base/page and redirected under /base')
  await res.body.dump()
})

test('forwarded headers, request id and hop-by-hop headers', async (t) => {
  let headers: Record<string, unknown> = {}
  const up = await startHttpUpstream(t, (req, res) => {
    headers = req.headers
    res.setHeader('keep-alive', 'timeout=99')
    res.setHeader('x-upstream', 'yes')
    res.end('ok')
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })

  const res = await request(`${gw.url}/api/h`, {
    headers: {
      'x-forwarded-for': '203.0.113.9',
      'x-request-id': 'client-id-123',
      'proxy-authorization': 'Basic secret',
      te: 'trailers',
      'x-user-id': 'forged',
      'x-device-id': 'forged',
      'x-auth-method': 'forged'
    }
  })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-request-id'], 'client-id-123')
  t.equal(res.headers['x-upstream'], 'yes')
  t.not(res.headers['keep-alive'], 'timeout=99', 'upstream keep-alive is not relayed')
  await res.body.text()

  t.equal(headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1')
  t.equal(headers['x-forwarded-proto'], 'http')
  t.match(headers['x-forwarded-host'], /^127\.0\.0\.1:\d+$/)
  t.equal(headers['x-request-id'], 'client-id-123')
  for (const name of ['proxy-authorization', 'te', 'x-user-id', 'x-device-id', 'x-auth-method']) {
    t.equal(headers[name], undefined, `${name} is not forwarded`)
  }

  // Headers named in Connection are hop-by-hop (raw, since HTTP clients manage Connection themselves).
  const raw = await rawRequest(gw.url, 'GET /api/h HTTP/1.1\r\nHost: x\r\nConnection: close, x-drop-me\r\nX-Drop-Me: 1\r\nX-Keep-Me: 1\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 200/)
  t.equal(headers['x-drop-me'], undefined, 'x-drop-me is not forwarded')
  t.equal(headers['x-keep-me'], '1')

  // No client id (or a hostile one): the gateway makes one and sends the same upstream and back.
  const gen = await request(`${gw.url}/api/h`, { headers: { 'x-request-id': 'bad id\twith spaces' } })
  await gen.body.text()
  t.match(gen.headers['x-request-id'], /^[0-9a-f]{32}$/)
  t.equal(headers['x-request-id'], gen.headers['x-request-id'])
})

test('the gateway\'s own response headers win over the same names from the upstream', async (t) => {
  const up = await startHttpUpstream(t, (_req, res) => {
    res.writeHead(200, {
      'x-request-id': 'from-upstream',
      'x-ratelimit-limit': '999',
      'x-upstream-only': 'kept',
      constructor: 'a header name that is also an Object property',
      connection: 'keep-alive',
      'keep-alive': 'timeout=5'
    })
    res.end('ok')
  })
  const gw = await buildGateway(t, { rate_limit: { max: 5, window: '1m' }, routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })
  const res = await request(`${gw.url}/api/x`, { headers: { 'x-request-id': 'client-7' } })
  t.equal(await res.body.text(), 'ok')
  t.equal(res.headers['x-request-id'], 'client-7', 'the request id is the gateway\'s')
  t.equal(res.headers['x-ratelimit-limit'], '5', 'the rate-limit headers are the gateway\'s')
  t.equal(res.headers['x-upstream-only'], 'kept', 'other upstream headers pass')
  t.ok(Object.hasOwn(res.headers, 'constructor') && res.headers.constructor as unknown === 'a header name that is also an Object property', 'even one named like an Object property')
  t.not(res.headers['keep-alive'], 'timeout=5', 'hop-by-hop headers of the upstream hop are not passed')
})

test('refused upstream: 502 UPSTREAM_UNAVAILABLE with a JSON body', async (t) => {
  // Take a free port and close it, so nothing listens there.
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as AddressInfo).port
  await new Promise(resolve => probe.close(resolve))
  const gw = await buildGateway(t, { routes: [{ prefix: '/dead', upstream: `http://127.0.0.1:${port}`, auth: 'none' }] })
  const res = await request(`${gw.url}/dead/x`, { headers: { 'x-request-id': 'dead-1' } })
  t.equal(res.statusCode, 502)
  t.equal(res.headers['x-request-id'], 'dead-1')
  const body = await res.body.json() as { error: { code: string, message: string } }
  t.equal(body.error.code, 'UPSTREAM_UNAVAILABLE')
  t.type(body.error.message, 'string')
  // The gateway keeps serving.
  t.equal((await request(`${gw.url}/health`)).statusCode, 200)
  // Every answer the gateway makes itself carries the request id too.
  for (const path of ['/nowhere', '/dead/..%2fx', '/health']) {
    const other = await request(`${gw.url}${path}`, { headers: { 'x-request-id': `id-${path.length}` } })
    t.equal(other.headers['x-request-id'], `id-${path.length}`, path)
    await other.body.text()
  }
})

test('slow upstream: 504 UPSTREAM_TIMEOUT after the route timeout', async (t) => {
  const up = await startHttpUpstream(t, (req, res) => {
    // Anything but /fast never answers; torn down by the helper.
    if (req.url === '/fast') res.end('fast')
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/slow', upstream: up.url, timeout: '300ms', auth: 'none' }] })
  const res = await request(`${gw.url}/slow/x`)
  t.equal(res.statusCode, 504)
  t.equal((await res.body.json() as { error: { code: string } }).error.code, 'UPSTREAM_TIMEOUT')
  const fast = await request(`${gw.url}/slow/fast`)
  t.equal(await fast.body.text(), 'fast')
})

test('an upstream that dies mid-response does not crash the gateway', async (t) => {
  const up = await startHttpUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' })
    res.write('partial')
    setImmediate(() => res.socket?.destroy())
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url, auth: 'none' }] })
  const res = await request(`${gw.url}/api/x`)
  await t.rejects(res.body.text())
  t.equal((await request(`${gw.url}/health`)).statusCode, 200)
})

test('a client that leaves before the answer cancels the upstream request', async (t) => {
  const upstream = new EventEmitter()
  const up = await startHttpUpstream(t, (_req, res) => {
    // Never answers: only the client's departure can end this request before the route timeout.
    res.on('close', () => upstream.emit('closed'))
    upstream.emit('request')
  })
  const gw = await buildGateway(t, { routes: [{ prefix: '/hold', upstream: up.url, timeout: '30s', auth: 'none' }] })
  const started = Date.now()
  const client = connect(Number(new URL(gw.url).port), '127.0.0.1')
  client.on('error', () => {})
  client.write('GET /hold/x HTTP/1.1\r\nHost: gw\r\n\r\n')
  await once(upstream, 'request')
  const closed = once(upstream, 'closed')
  client.destroy()
  await closed
  t.ok(Date.now() - started < 5_000, 'the upstream request ended well before the 30 s timeout')
})

test('auth: required (the default) refuses with 401 until a credential is given', async (t) => {
  let hits = 0
  const up = await startHttpUpstream(t, (_req, res) => { hits++; res.end('secret') })
  const gw = await buildGateway(t, { routes: [{ prefix: '/private', upstream: up.url }] })
  const res = await request(`${gw.url}/private/x`)
  t.equal(res.statusCode, 401)
  t.equal((await res.body.json() as { error: { code: string } }).error.code, 'UNAUTHORIZED')
  t.equal(hits, 0)
})

test('path traversal through a prefix is refused and never reaches the upstream', async (t) => {
  const urls: string[] = []
  const up = await startHttpUpstream(t, (req, res) => { urls.push(req.url ?? ''); res.end('ok') })
  const gw = await buildGateway(t, { routes: [{ prefix: '/api', upstream: up.url, rewritePrefix: '/public', auth: 'none' }] })
  const attempts = [
    '/api/../admin', '/api/./x', '/api/a/../../admin', '/api/%2e%2e/admin', '/api/%2E%2e/admin',
    '/api%2f..%2fadmin', '/api/..%2fadmin', '/api/..%5cadmin', '/api/%5c..%5cadmin', '/api/%252e%252e/admin',
    '/api/%25252e%25252e/admin', '/api/%ZZ', '/api/a%00b',
    // A percent-encoded prefix matches the route, but the rest of the raw URL would not follow it.
    '/%61pi/admin', '/a%70i/x', '/%61%70%69', '/ap%69?x=1'
  ]
  // Sent raw on the wire: a URL parser on the client side would normalise them away.
  for (const path of [...attempts, '/api/..\\admin', '/api/a\\..\\..\\admin']) {
    const raw = await rawRequest(gw.url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    t.match(raw, /^HTTP\/1\.1 (400|404)/, `${path} refused`)
    t.match(raw, /"code":"(BAD_PATH|BAD_REQUEST|NOT_FOUND)"/, `${path} has a JSON error code`)
  }
  t.same(urls, [], 'no attempt reached the upstream')
  const ok = await request(`${gw.url}/api/files/a.txt`)
  t.equal(await ok.body.text(), 'ok')
  t.same(urls, ['/public/files/a.txt'])
})

test('internal error details never reach the client; parser errors are JSON too', async (t) => {
  const gw = await buildGateway(t, {}, (app) => {
    app.get('/boom', async () => {
      throw Object.assign(new Error("ENOENT: no such file or directory, open '/etc/gateway/secret.key'"), { code: 'ENOENT' })
    })
  })
  const res = await request(`${gw.url}/boom`)
  t.equal(res.statusCode, 500)
  t.same(await res.body.json(), { error: { code: 'INTERNAL_ERROR', message: 'Internal Server Error' } })
  const big = await rawRequest(gw.url, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.match(big, /^HTTP\/1\.1 431/)
  t.match(big, /"code":"HEADERS_TOO_LARGE"/)
  const garbage = await rawRequest(gw.url, 'NOT HTTP AT ALL\r\n\r\n')
  t.match(garbage, /^HTTP\/1\.1 400/)
  t.match(garbage, /"code":"BAD_REQUEST"/)
})
