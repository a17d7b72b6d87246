import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import closeWithGrace from 'close-with-grace'
import app, { options } from './app.js'
import { ConfigError, loadConfig } from './lib/config.js'
import { loggerOptions } from './lib/logger.js'
import type { GatewayConfig } from './schemas/config.js'

function fail (message: string): never {
  process.stderr.write(`${message}\n`)
  process.exit(1)
}

function readTls (tls: NonNullable<GatewayConfig['tls']>): { cert: Buffer, key: Buffer } {
  const read = (path: string, key: string): Buffer => {
    try {
      return readFileSync(path)
    } catch (err) {
      throw new ConfigError(key, `cannot read ${path}: ${(err as Error).message}`)
    }
  }
  return { cert: read(tls.certPath, 'tls_cert_path (GATEWAY_TLS_CERT_PATH)'), key: read(tls.keyPath, 'tls_key_path (GATEWAY_TLS_KEY_PATH)') }
}

async function main (): Promise<void> {
  let config: GatewayConfig
  let https: { cert: Buffer, key: Buffer } | null = null
  try {
    config = loadConfig()
    if (config.tls !== undefined) https = readTls(config.tls)
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    throw err
  }

  const fastify = Fastify({
    ...options,
    logger: loggerOptions(config),
    ...(https !== null ? { https } : {}),
    connectionTimeout: 0,
    keepAliveTimeout: 72_000,
    requestTimeout: 300_000
  })

  try {
    await fastify.register(app, { config })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    throw err
  }

  // In-flight requests finish and WebSocket clients get 1001; past the delay the process exits anyway.
  closeWithGrace({ delay: config.shutdownTimeoutMs }, async ({ signal, err }) => {
    if (err !== undefined) fastify.log.error({ err }, 'shutting down after an error')
    else fastify.log.info({ signal }, 'shutting down')
    await fastify.close()
  })

  try {
    await fastify.listen({ host: config.listen.host, port: config.listen.port })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    fail(`cannot listen on ${config.listen.host}:${config.listen.port} (listen_addr / GATEWAY_LISTEN_ADDR): ${(err as Error).message}`)
  }
}

await main()
