import { Type, type Static } from '@sinclair/typebox'

/** The JSON error body every HTTP error uses: `{ "error": { "code", "message" } }`. */
export const ErrorBodySchema = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String()
  })
}, { $id: 'ErrorBody' })
export type ErrorBody = Static<typeof ErrorBodySchema>

/** Durations accept `500ms`, `5s`, `1m`, `1h` or plain milliseconds. */
export const DurationSchema = Type.Union([
  Type.Integer({ minimum: 0 }),
  Type.String({ pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h)?\\s*$' })
], { description: 'a duration such as 500ms, 5s, 1m, or plain milliseconds' })
