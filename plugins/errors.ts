import fp from 'fastify-plugin'
import type { FastifyError } from 'fastify'
import * as errors from '../lib/errors.js'
import { errorBody, NotFoundError, STATUS_CODES } from '../lib/errors.js'

/** The codes of the gateway's own error classes (lib/errors.ts): only these reach clients as they are. */
const OWN_CODES = new Set((Object.values(errors) as unknown[])
  .filter((value): value is new () => { code?: unknown } => typeof value === 'function')
  .map(ErrorClass => new ErrorClass().code)
  .filter((code): code is string => typeof code === 'string'))

function errorCode (err: FastifyError, status: number): string {
  // Anything else (FST_ERR_*, ENOENT, UND_ERR_*) is an internal name; clients get the code for the status.
  if (typeof err.code === 'string' && OWN_CODES.has(err.code)) return err.code
  return STATUS_CODES[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'BAD_REQUEST')
}

/** One error handler: every HTTP error is `{ "error": { "code", "message" } }`; 5xx internals are hidden. */
export default fp(async (fastify) => {
  fastify.setErrorHandler(function (err: FastifyError, request, reply) {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
    const code = errorCode(err, status)
    const ours = code === err.code
    if (status >= 500 && !ours) {
      request.log.error({ err }, 'request failed')
    } else {
      request.log.info({ code, status, message: err.message }, 'request refused')
    }
    const headers = (err as { headers?: Record<string, string> }).headers
    if (headers !== undefined) reply.headers(headers)
    const message = status >= 500 && !ours ? 'Internal Server Error' : err.message
    return reply.code(status).type('application/json; charset=utf-8').send(errorBody(code, message))
  })

  fastify.setNotFoundHandler(function (request, reply) {
    const err = new NotFoundError(request.method, request.url.split('?')[0].slice(0, 200))
    return reply.code(404).send(errorBody(err.code, err.message))
  })
}, { name: 'errors' })
