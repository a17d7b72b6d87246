import { Type, type Static } from '@sinclair/typebox'

const Secret = (description: string): ReturnType<typeof Type.String> => Type.String({ minLength: 1, maxLength: 8192, description })

/** `POST /auth/token`: one kind of credentials. */
export const TokenRequestSchema = Type.Union([
  Type.Object({
    device_id: Type.String({ minLength: 1, maxLength: 128 }),
    token: Secret('the device token')
  }, { title: 'Device credentials' }),
  Type.Object({ api_key: Secret('an API key') }, { title: 'API key' }),
  Type.Object({ jwt: Secret('a JWT from the configured external issuer') }, { title: 'External JWT' })
], { description: 'device_id and token, or api_key, or jwt: exactly one kind' })
export type TokenRequest = Static<typeof TokenRequestSchema>

/** `POST /auth/refresh`. */
export const RefreshRequestSchema = Type.Object({
  refresh_token: Secret('the latest refresh token of the login')
})
export type RefreshRequest = Static<typeof RefreshRequestSchema>

/** A gateway token pair: a short-lived access token (JWT) and an opaque, single-use refresh token. */
export const TokenPairSchema = Type.Object({
  access_token: Type.String(),
  refresh_token: Type.String(),
  expires_in: Type.Integer({ minimum: 0, description: 'seconds until the access token expires' }),
  token_type: Type.Literal('Bearer')
})
export type TokenPairBody = Static<typeof TokenPairSchema>
