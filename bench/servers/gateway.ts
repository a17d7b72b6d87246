/**
 * The gateway under test, in its own process: built like test/helper.ts does it, from the real
 * app and `loadConfig({ env: {}, overrides })`, with the server options of server.ts. Logging is
 * off (`logger: false`), as in the tests. Reports `process.memoryUsage()` on request (bench only).
 */
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import app, { options as serverOptions } from '../../app.js'
import { ConfigError, loadConfig } from '../../lib/config.js'
import type { GatewayConfig } from '../../schemas/config.js'
import * as ipc from '../lib/ipc.js'

interface GatewayChildOptions {
  overrides: Record<string, unknown>
  /** Keys that are dropped (and reported) when this version of the gateway does not know them. */
  optionalKeys?: string[]
  /** Fastify's pluginTimeout; 0 (none) under valgrind, where start-up is tens of times slower. */
  pluginTimeout?: number
}

ipc.bound(60 * 60_000)
const opts = ipc.options<GatewayChildOptions>()

function configure (): { config: GatewayConfig, dropped: string[] } {
  const overrides: Record<string, unknown> = { listen_addr: '127.0.0.1:0', log_level: 'silent', ...opts.overrides }
  const dropped: string[] = []
  for (;;) {
    try {
      return { config: loadConfig({ env: {}, overrides }), dropped }
    } catch (err) {
      const key = err instanceof ConfigError ? (opts.optionalKeys ?? []).find(k => err.key.startsWith(k)) : undefined
      if (key === undefined || !(key in overrides)) throw err
      dropped.push(`${key}: ${(err as Error).message}`)
      delete overrides[key]
    }
  }
}

function rss (): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))
  return match === null ? 0 : Number(match[1]) * 1024
}

const { config, dropped } = configure()
const fastify = Fastify({
  ...serverOptions,
  logger: false,
  connectionTimeout: 0,
  keepAliveTimeout: 72_000,
  requestTimeout: 300_000,
  ...(opts.pluginTimeout !== undefined ? { pluginTimeout: opts.pluginTimeout } : {})
})
await fastify.register(fp(app), { config })
await fastify.listen({ host: '127.0.0.1', port: 0 })

ipc.on('mem', () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) { gc(); gc() }
  ipc.send({ type: 'mem', gc: gc !== undefined, vmRss: rss(), ...process.memoryUsage() })
})

ipc.on('stop', async () => {
  // A normal exit, so that --cpu-prof writes its profile.
  const timer = setTimeout(() => process.exit(0), 5_000)
  await fastify.close().catch(() => {})
  clearTimeout(timer)
  process.exit(0)
})

ipc.send({ type: 'ready', port: (fastify.server.address() as AddressInfo).port, dropped })
