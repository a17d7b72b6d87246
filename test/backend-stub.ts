import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

type Test = { teardown: (fn: () => unknown) => void }

export interface ValidateRequest { device_id?: unknown, token?: unknown }

export interface BackendStub {
  server: Server
  /** Base URL to use as `backend_base_url` (with the stub's path prefix, if any). */
  url: string
  /** Every validate-device body the stub received. */
  requests: ValidateRequest[]
  /** Devices refused from now on (`device_revoked`), whatever their prefix says. */
  denied: Set<string>
  /** TCP connections the stub accepted (keep-alive keeps this low). */
  connections: number
  /** Stops the stub: later checks find the backend down. */
  close: () => Promise<void>
}

export const GOOD_TOKEN = 'stub-good-token'

/**
 * Answers by the device id's prefix:
 * `allow-*` allowed when the token is GOOD_TOKEN (refused otherwise), `deny-*` refused,
 * `slow-*` never answers, `fail-*` 500, `garbage-*` a body that is not JSON,
 * `badshape-*` JSON of the wrong shape, `nouser-*` allowed without a user_id.
 */
function answer (body: ValidateRequest, res: ServerResponse, held: ServerResponse[], denied: Set<string>): void {
  const device = typeof body.device_id === 'string' ? body.device_id : ''
  const json = (status: number, value: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value))
  }
  if (denied.has(device)) return json(200, { allowed: false, reason: 'device_revoked' })
  if (device.startsWith('allow-')) {
    if (body.token !== GOOD_TOKEN) return json(200, { allowed: false, reason: 'invalid_token' })
    return json(200, { allowed: true, user_id: `user-of-${device}`, subscription_status: 'active', reason: null })
  }
  if (device.startsWith('deny-')) return json(200, { allowed: false, user_id: null, subscription_status: 'expired', reason: 'subscription_expired' })
  if (device.startsWith('slow-')) { held.push(res); return }
  if (device.startsWith('fail-')) return json(500, { error: 'internal' })
  if (device.startsWith('garbage-')) { res.writeHead(200, { 'content-type': 'application/json' }).end('<html>not json'); return }
  if (device.startsWith('badshape-')) return json(200, { allowed: 'yes', user_id: 42 })
  if (device.startsWith('nouser-')) return json(200, { allowed: true })
  return json(200, { allowed: false, reason: 'unknown_device' })
}

/** A real HTTP backend on loopback for `POST /api/v1/auth/validate-device`. */
export async function startBackendStub (t: Test, prefix = ''): Promise<BackendStub> {
  const held: ServerResponse[] = []
  const stub: Partial<BackendStub> = { requests: [], denied: new Set(), connections: 0 }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== `${prefix}/api/v1/auth/validate-device`) {
      req.resume()
      res.writeHead(req.url === '/' || req.url === prefix ? 200 : 404).end()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let body: ValidateRequest = {}
      try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch {}
      stub.requests?.push(body)
      answer(body, res, held, stub.denied as Set<string>)
    })
  })
  server.on('connection', () => { (stub as BackendStub).connections++ })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    for (const res of held) res.destroy()
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  }
  t.teardown(close)
  return Object.assign(stub, {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`,
    close
  }) as BackendStub
}
