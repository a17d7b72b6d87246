import { Type, type Static } from '@sinclair/typebox'

export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy')]),
  services: Type.Record(Type.String(), Type.Union([Type.Literal('up'), Type.Literal('down')]))
})
export type Health = Static<typeof HealthSchema>
