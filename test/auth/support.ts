import { request } from 'undici'

/** What the helpers need of a tap test. */
export type Test = { teardown: (fn: () => unknown) => void }

export interface JsonResponse { status: number, body: any, headers: Record<string, string | string[] | undefined> }

/** One HTTP call with an optional JSON body; the JSON answer parsed (or undefined). */
export async function call (method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const res = await request(url, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json', ...headers } : headers,
    body: body !== undefined ? JSON.stringify(body) : undefined
  })
  const text = await res.body.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = text
  }
  return { status: res.statusCode, body: parsed, headers: res.headers }
}

export function errorCode (res: JsonResponse): string | undefined {
  return res.body?.error?.code
}
