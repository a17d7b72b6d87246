import { execFile } from 'node:child_process'
import { existsSync, realpathSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { findExecutable } from './proc.js'

/** The C relay of the `native` row (bench/native/relay.c); not part of the gateway. */
export interface NativeRelay {
  /** Relays bytes between two connected sockets' descriptors until one ends; then `onEnd(reason)`, once. */
  start: (fdA: number, fdB: number, onEnd: (reason: string) => void) => void
}

/** bench/native in the source tree (the bench runs from dist/bench/lib). */
const NATIVE_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../bench/native')
const ADDON = join(NATIVE_DIR, 'build/Release/relay.node')
const SOURCES = ['relay.c', 'binding.gyp'].map(f => join(NATIVE_DIR, f))

/** npm's own node-gyp: npm names it to scripts; otherwise it sits in npm's own node_modules. */
function nodeGyp (): string {
  const npm = findExecutable('npm')
  const candidates = [
    process.env.npm_config_node_gyp,
    // bin/npm is a link to npm's bin/npm-cli.js wherever npm is installed (Debian, tarballs, nvm).
    npm === undefined ? undefined : join(dirname(realpathSync(npm)), '../node_modules/node-gyp/bin/node-gyp.js'),
    join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')
  ]
  const found = candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p))
  if (found === undefined) throw new Error('node-gyp not found (it comes with npm; a C compiler, make and python3 are needed too)')
  return found
}

/** Node's own headers when they sit beside it (Debian's nodejs, official tarballs): no download. */
function nodeDirArgs (): string[] {
  const configured = process.env.npm_config_nodedir
  if (configured !== undefined && configured !== '') return [`--nodedir=${configured}`]
  const prefix = join(dirname(process.execPath), '..')
  return existsSync(join(prefix, 'include/node/node_api.h')) ? [`--nodedir=${prefix}`] : []
}

function upToDate (): boolean {
  if (!existsSync(ADDON)) return false
  const built = statSync(ADDON).mtimeMs
  return SOURCES.every(f => statSync(f).mtimeMs <= built)
}

/**
 * Builds the addon when its sources are newer than the build (a few seconds) and returns its
 * path. Two builds at once (a bench run and the test) would share bench/native/build: run one.
 */
export async function buildNativeRelay (): Promise<string> {
  if (!upToDate()) {
    try {
      await promisify(execFile)(process.execPath, [nodeGyp(), 'rebuild', ...nodeDirArgs()], { cwd: NATIVE_DIR, timeout: 300_000 })
    } catch (err) {
      const e = err as Error & { stderr?: string }
      const detail = (e.stderr ?? '').trim().split('\n').slice(-3).join(' ')
      throw new Error(`building bench/native failed: ${e.message.split('\n')[0]}${detail !== '' ? ` (${detail})` : ''}`)
    }
  }
  return ADDON
}

/** Builds the addon when needed and loads it into this process. */
export async function loadNativeRelay (): Promise<{ path: string, relay: NativeRelay }> {
  const path = await buildNativeRelay()
  return { path, relay: createRequire(import.meta.url)(path) as NativeRelay }
}
