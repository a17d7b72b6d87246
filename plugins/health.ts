import fp from 'fastify-plugin'

export type HealthCheck = () => Promise<boolean>

export interface HealthRegistry {
  /** Adds a dependency that `/health` reports as up or down. */
  add: (name: string, check: HealthCheck) => void
  /** Runs every check at once; a check that throws or takes over `timeoutMs` is down. */
  check: (timeoutMs?: number) => Promise<Record<string, 'up' | 'down'>>
}

declare module 'fastify' {
  interface FastifyInstance {
    health: HealthRegistry
  }
}

async function runCheck (check: HealthCheck, timeoutMs: number): Promise<'up' | 'down'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<boolean>(resolve => { timer = setTimeout(resolve, timeoutMs, false) })
  try {
    return (await Promise.race([check(), timeout])) ? 'up' : 'down'
  } catch {
    return 'down'
  } finally {
    clearTimeout(timer)
  }
}

export default fp(async (fastify) => {
  const checks = new Map<string, HealthCheck>()
  fastify.decorate<HealthRegistry>('health', {
    add (name, check) {
      if (checks.has(name)) throw new Error(`health check ${name} is already registered`)
      checks.set(name, check)
    },
    async check (timeoutMs = 2000) {
      const names = [...checks.keys()]
      const results = await Promise.all(names.map(async name => await runCheck(checks.get(name) as HealthCheck, timeoutMs)))
      return Object.fromEntries(names.map((name, i) => [name, results[i]]))
    }
  })
}, { name: 'health' })
