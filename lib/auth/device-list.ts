import { timingSafeEqual } from 'node:crypto'
import { sha256Digest as sha256 } from '../hash.js'
import type { DeviceConfig } from '../../schemas/config.js'
import type { DeviceAuthenticator, DeviceCheck } from './types.js'

interface KnownDevice {
  tokenDigest: Buffer
  userId: string
  subscriptionStatus?: string
}

// Compared against when the device is unknown, so that a miss costs the same as a wrong token.
const NO_DEVICE_DIGEST = sha256('\0no such device\0')

/**
 * The embedded device list of the YAML config (`devices:`), for running without a backend.
 * Tokens are compared as sha256 digests with `timingSafeEqual`; a plain `token` is hashed at start.
 */
export class DeviceListAuthenticator implements DeviceAuthenticator {
  private readonly devices = new Map<string, KnownDevice>()

  constructor (devices: DeviceConfig[]) {
    for (const d of devices) {
      const tokenDigest = d.token !== undefined ? sha256(d.token) : Buffer.from(d.token_sha256 as string, 'hex')
      this.devices.set(d.device_id, { tokenDigest, userId: d.user_id, subscriptionStatus: d.subscription_status })
    }
  }

  get size (): number {
    return this.devices.size
  }

  async validate (deviceId: string, token: string): Promise<DeviceCheck> {
    const device = this.devices.get(deviceId)
    const matches = timingSafeEqual(sha256(token), device?.tokenDigest ?? NO_DEVICE_DIGEST)
    // One reason for both cases: a client cannot probe which device ids exist.
    if (device === undefined || !matches) return { allowed: false, reason: 'invalid_credentials' }
    return device.subscriptionStatus !== undefined
      ? { allowed: true, user_id: device.userId, subscription_status: device.subscriptionStatus }
      : { allowed: true, user_id: device.userId }
  }
}
