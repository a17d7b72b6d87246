import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Pool } from 'undici'
import type { DeviceAuthenticator, DeviceCheck, CheckFailureReason } from './types.js'

export const VALIDATE_DEVICE_PATH = '/api/v1/auth/validate-device'
/** An answer larger than this is not a validate-device answer. */
const MAX_RESPONSE_BYTES = 64 * 1024
const MAX_TEXT = 200

/** What the backend answers to `POST /api/v1/auth/validate-device`. */
const ValidateDeviceResponseSchema = Type.Object({
  allowed: Type.Boolean(),
  user_id: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  subscription_status: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  reason: Type.Optional(Type.Union([Type.String(), Type.Null()]))
})
type ValidateDeviceResponse = Static<typeof ValidateDeviceResponseSchema>
const validResponse = TypeCompiler.Compile(ValidateDeviceResponseSchema)

export interface BackendAuthOptions {
  /** `http(s)://host[:port][/base/path]`, without a trailing slash. */
  baseUrl: string
  timeoutMs: number
  /** Keep-alive connections kept to the backend. */
  connections?: number
  /** Told about every failed check (for metrics and logs); the token is never passed. */
  onFailure?: (reason: CheckFailureReason, detail: string, deviceId: string) => void
}

class BackendFailure extends Error {
  constructor (public reason: CheckFailureReason, detail: string) {
    super(detail)
  }
}

/** Maps an undici or network error to why the backend could not answer. */
function failureOf (err: unknown, timedOut: boolean): BackendFailure {
  if (err instanceof BackendFailure) return err
  const e = err as { code?: string, message?: string }
  const code = e.code ?? ''
  if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new BackendFailure('backend_timeout', 'backend did not answer in time')
  }
  return new BackendFailure('backend_unavailable', code !== '' ? code : (e.message ?? 'request failed'))
}

function clip (text: string): string {
  return text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) : text
}

function checkOf (answer: ValidateDeviceResponse): DeviceCheck {
  if (!answer.allowed) {
    const reason = typeof answer.reason === 'string' && answer.reason !== '' ? clip(answer.reason) : 'denied'
    return { allowed: false, reason }
  }
  if (typeof answer.user_id !== 'string' || answer.user_id === '') {
    throw new BackendFailure('backend_error', 'backend allowed the device without a user_id')
  }
  const user = clip(answer.user_id)
  return typeof answer.subscription_status === 'string'
    ? { allowed: true, user_id: user, subscription_status: clip(answer.subscription_status) }
    : { allowed: true, user_id: user }
}

async function readLimited (body: AsyncIterable<Buffer> & { destroy: () => unknown }): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy()
      throw new BackendFailure('backend_error', `backend answer is over ${MAX_RESPONSE_BYTES} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Checks devices with the backend over a keep-alive pool. Every failure (down, slow,
 * non-2xx, malformed answer) becomes `allowed: false` with a `backend_*` reason: it never throws.
 */
export class BackendDeviceAuthenticator implements DeviceAuthenticator {
  private readonly pool: Pool
  private readonly basePath: string

  constructor (private readonly opts: BackendAuthOptions) {
    const url = new URL(opts.baseUrl)
    this.basePath = url.pathname.replace(/\/+$/, '')
    this.pool = new Pool(url.origin, {
      connections: opts.connections ?? 32,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: { timeout: opts.timeoutMs }
    })
  }

  async validate (deviceId: string, token: string): Promise<DeviceCheck> {
    const body = JSON.stringify({ device_id: deviceId, token })
    try {
      return await this.withTimeout(async (signal) => await this.post(body, signal))
    } catch (err) {
      const failure = failureOf(err, false)
      this.opts.onFailure?.(failure.reason, failure.message, deviceId)
      return { allowed: false, reason: failure.reason }
    }
  }

  /** True when the backend answers anything at all over HTTP. */
  async reachable (): Promise<boolean> {
    try {
      await this.withTimeout(async (signal) => {
        const res = await this.pool.request({ method: 'HEAD', path: this.basePath === '' ? '/' : this.basePath, signal })
        await res.body.dump()
      })
      return true
    } catch {
      return false
    }
  }

  async close (): Promise<void> {
    await this.pool.destroy()
  }

  private async post (body: string, signal: AbortSignal): Promise<DeviceCheck> {
    let res
    try {
      res = await this.request(body, signal)
    } catch (err) {
      // A kept-alive connection the backend had just closed: the check is read-only, so retry once.
      if ((err as { code?: string }).code !== 'UND_ERR_SOCKET' || signal.aborted) throw err
      res = await this.request(body, signal)
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      await res.body.dump()
      throw new BackendFailure('backend_error', `backend answered ${res.statusCode}`)
    }
    const text = await readLimited(res.body)
    let answer: unknown
    try {
      answer = JSON.parse(text)
    } catch {
      throw new BackendFailure('backend_error', 'backend answer is not JSON')
    }
    if (!validResponse.Check(answer)) throw new BackendFailure('backend_error', 'backend answer does not match the validate-device schema')
    return checkOf(answer)
  }

  private async request (body: string, signal: AbortSignal): ReturnType<Pool['request']> {
    return await this.pool.request({
      method: 'POST',
      path: this.basePath + VALIDATE_DEVICE_PATH,
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body,
      signal
    })
  }

  /** One deadline for the whole exchange: connect, headers and body. */
  private async withTimeout<T> (fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; controller.abort() }, this.opts.timeoutMs)
    try {
      return await fn(controller.signal)
    } catch (err) {
      throw failureOf(err, timedOut)
    } finally {
      clearTimeout(timer)
    }
  }
}
