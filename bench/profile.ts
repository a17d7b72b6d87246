/** `node dist/bench/profile.js <file.cpuprofile> [topN]`: self-time summary of a V8 CPU profile. */
import { formatSummary, summarize } from './lib/profile.js'

const [file, n] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: node dist/bench/profile.js <file.cpuprofile> [topN]\n')
  process.exit(1)
}
process.stdout.write(formatSummary(summarize(file, n !== undefined ? Number(n) : 25)) + '\n')
