/** The answer to "may this device open a session?". */
export type DeviceCheck = { allowed: true, user_id: string, subscription_status?: string } | { allowed: false, reason: string }

/** Checks a device's credentials; never throws for a refusal, only resolves `allowed: false`. */
export interface DeviceAuthenticator {
  validate (deviceId: string, token: string): Promise<DeviceCheck>
}

/**
 * Reasons that mean the check could not be made at all (the backend failed), as opposed
 * to a refusal of the credentials. Handshakes that end with one count as `error`, not `rejected`.
 */
export const CHECK_FAILURE_REASONS = ['backend_unavailable', 'backend_timeout', 'backend_error', 'internal_error'] as const
export type CheckFailureReason = typeof CHECK_FAILURE_REASONS[number]

export function isCheckFailure (check: DeviceCheck): boolean {
  return !check.allowed && (CHECK_FAILURE_REASONS as readonly string[]).includes(check.reason)
}
