import fp from 'fastify-plugin'
import { BackendDeviceAuthenticator } from '../lib/auth/device-backend.js'
import { DeviceListAuthenticator } from '../lib/auth/device-list.js'
import type { DeviceAuthenticator } from '../lib/auth/types.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Checks a device's `hello`: the backend when `backend_base_url` is set, the config's `devices:` otherwise. */
    deviceAuth: DeviceAuthenticator
  }
}

export default fp(async (fastify) => {
  const { backend, devices } = fastify.config
  if (backend === undefined) {
    const list = new DeviceListAuthenticator(devices)
    fastify.decorate<DeviceAuthenticator>('deviceAuth', list)
    fastify.log.debug({ devices: list.size }, 'device auth: embedded device list')
    return
  }

  const { backendErrors } = fastify.sessionMetrics
  const client = new BackendDeviceAuthenticator({
    baseUrl: backend.baseUrl,
    timeoutMs: backend.timeoutMs,
    onFailure (reason, detail, deviceId) {
      backendErrors.inc({ reason })
      fastify.log.warn({ event: 'backend_error', reason, detail, device_id: deviceId }, 'device check failed')
    }
  })
  fastify.decorate<DeviceAuthenticator>('deviceAuth', client)
  fastify.health.add('backend', async () => await client.reachable())
  fastify.addHook('onClose', async () => { await client.close() })
  fastify.log.debug({ backend: backend.baseUrl }, 'device auth: backend')
}, { name: 'device-auth', dependencies: ['config', 'health', 'session-metrics'] })
