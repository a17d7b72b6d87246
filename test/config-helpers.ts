import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../lib/config.js'

/** Writes YAML to a fresh temporary file and returns its path. */
export function yamlFile (text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, text)
  return file
}

/** The message of the ConfigError `fn` throws (anything else fails the test). */
export function configError (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  throw new Error('expected a ConfigError')
}
