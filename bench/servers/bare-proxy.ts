/**
 * The baseline: a bare Fastify app with only @fastify/http-proxy (defaults), one HTTP route
 * and one WebSocket route, in its own process.
 */
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'
import * as ipc from '../lib/ipc.js'

ipc.bound(60 * 60_000)
// pluginTimeout: 0 under valgrind (the instructions scenario), where start-up is tens of times slower.
const { upstream, pluginTimeout } = ipc.options<{ upstream: string, pluginTimeout?: number }>()

const fastify = Fastify({ logger: false, connectionTimeout: 0, keepAliveTimeout: 72_000, requestTimeout: 300_000, ...(pluginTimeout !== undefined ? { pluginTimeout } : {}) })
await fastify.register(httpProxy, { upstream, prefix: '/api', rewritePrefix: '/' })
await fastify.register(httpProxy, { upstream, prefix: '/wsecho', rewritePrefix: '/', websocket: true })
await fastify.listen({ host: '127.0.0.1', port: 0 })

ipc.on('stop', async () => {
  const timer = setTimeout(() => process.exit(0), 5_000)
  await fastify.close().catch(() => {})
  clearTimeout(timer)
  process.exit(0)
})

ipc.send({ type: 'ready', port: (fastify.server.address() as AddressInfo).port })
