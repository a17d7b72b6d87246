import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The parts of a V8 `.cpuprofile` (as written by `node --cpu-prof`) that self time needs. */
interface CpuProfile {
  nodes: Array<{ id: number, children?: number[], callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number } }>
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileEntry {
  functionName: string
  location: string
  module: string
  selfMs: number
  /** Share of the busy time (idle excluded). */
  selfPct: number
}

export interface ProfileSummary {
  file: string
  /** Wall time the profile covers, and the part of it that was not idle. */
  totalMs: number
  busyMs: number
  gcMs: number
  top: ProfileEntry[]
  /** Total (self + callees) time of the gateway's own code and its plugins (not the proxy/HTTP stack): where hooks cost. */
  inclusive: ProfileEntry[]
  modules: Array<{ module: string, selfMs: number, selfPct: number }>
}

/** The proxy/HTTP/WebSocket stack itself: left out of the inclusive list, which is about what the gateway adds. */
const STACK = new Set(['fastify', 'undici', '@fastify/reply-from', '@fastify/http-proxy', '@fastify/websocket', 'ws', 'avvio', 'find-my-way', 'fastify-plugin'])

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)'])

function shortUrl (url: string): string {
  if (url === '') return ''
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length)
  return path.startsWith('/') ? relative(process.cwd(), path) : path
}

/** Where time goes by package: a node_modules package, node's internals, the gateway's own files, or V8. */
function moduleOf (url: string, functionName: string): string {
  if (SPECIAL.has(functionName)) return functionName
  if (url === '') return '(native / V8 builtins)'
  if (url.startsWith('node:')) return 'node: core'
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const parts = path.slice(nm + '/node_modules/'.length).split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  const dist = path.indexOf('/dist/')
  return dist >= 0 ? `gateway: ${path.slice(dist + 6).split('/')[0]}/` : shortUrl(url)
}

/** Self time per function (summed over call sites), biggest first; idle time is left out. */
export function summarize (file: string, topN = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const selfById = new Map<number, number>()
  // Sample i lasts until sample i+1 (what Chrome DevTools does); the last one until endTime.
  let t = profile.startTime
  const stamps = profile.timeDeltas.map(d => (t += d))
  for (let i = 0; i < profile.samples.length; i++) {
    const end = i + 1 < stamps.length ? stamps[i + 1] : profile.endTime
    const us = Math.max(0, end - stamps[i])
    selfById.set(profile.samples[i], (selfById.get(profile.samples[i]) ?? 0) + us)
  }

  const entries = new Map<string, ProfileEntry>()
  const modules = new Map<string, number>()
  let idleUs = 0
  let gcUs = 0
  let totalUs = 0
  for (const [id, us] of selfById) {
    const frame = byId.get(id)?.callFrame
    if (frame === undefined) continue
    totalUs += us
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
    if (name === '(idle)') { idleUs += us; continue }
    if (name === '(garbage collector)') gcUs += us
    const url = shortUrl(frame.url)
    const location = url === '' ? '' : `${url}:${frame.lineNumber + 1}:${frame.columnNumber + 1}`
    const key = `${name}\0${location}`
    const entry = entries.get(key) ?? { functionName: name, location, module: moduleOf(frame.url, name), selfMs: 0, selfPct: 0 }
    entry.selfMs += us / 1000
    entries.set(key, entry)
    modules.set(entry.module, (modules.get(entry.module) ?? 0) + us / 1000)
  }
  // Inclusive time: every function on the stack of a sample gets the sample's time, once.
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const inclusive = new Map<string, ProfileEntry>()
  for (const [id, us] of selfById) {
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame
      if (frame === undefined || frame.url === '' || frame.url.startsWith('node:') || frame.url.startsWith('wasm:')) continue
      const module = moduleOf(frame.url, frame.functionName)
      if (STACK.has(module)) continue
      const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
      const url = shortUrl(frame.url)
      const location = `${url}:${frame.lineNumber + 1}:${frame.columnNumber + 1}`
      const key = `${name}\0${location}`
      if (seen.has(key)) continue
      seen.add(key)
      const entry = inclusive.get(key) ?? { functionName: name, location, module, selfMs: 0, selfPct: 0 }
      entry.selfMs += us / 1000
      inclusive.set(key, entry)
    }
  }
  const busyMs = (totalUs - idleUs) / 1000
  const pct = (ms: number): number => busyMs > 0 ? (ms / busyMs) * 100 : 0
  const top = [...entries.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, topN)
  for (const e of top) e.selfPct = pct(e.selfMs)
  const inclusiveTop = [...inclusive.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, topN)
  for (const e of inclusiveTop) e.selfPct = pct(e.selfMs)
  return {
    file,
    totalMs: totalUs / 1000,
    busyMs,
    gcMs: gcUs / 1000,
    top,
    inclusive: inclusiveTop,
    modules: [...modules].map(([module, selfMs]) => ({ module, selfMs, selfPct: pct(selfMs) })).sort((a, b) => b.selfMs - a.selfMs)
  }
}

export function formatSummary (s: ProfileSummary, modulesN = 12): string {
  const lines = [
    `${s.file}: ${(s.totalMs / 1000).toFixed(1)} s profiled, ${(s.busyMs / 1000).toFixed(1)} s busy (not idle), GC ${(s.gcMs / 1000).toFixed(2)} s`,
    '',
    `Top ${s.top.length} functions by self time (% of busy time):`,
    '   self ms  self %  function  (location)'
  ]
  for (const e of s.top) {
    lines.push(`${e.selfMs.toFixed(1).padStart(10)}  ${e.selfPct.toFixed(1).padStart(5)}%  ${e.functionName}${e.location !== '' ? `  (${e.location})` : ''}`)
  }
  lines.push('', `Top ${s.inclusive.length} functions of the gateway's code and plugins (not fastify/undici/reply-from/http-proxy/ws) by total time (self + callees):`)
  for (const e of s.inclusive) {
    lines.push(`${e.selfMs.toFixed(1).padStart(10)}  ${e.selfPct.toFixed(1).padStart(5)}%  ${e.functionName}  (${e.location})`)
  }
  lines.push('', 'Self time by module:')
  for (const m of s.modules.slice(0, modulesN)) {
    lines.push(`${m.selfMs.toFixed(1).padStart(10)}  ${m.selfPct.toFixed(1).padStart(5)}%  ${m.module}`)
  }
  return lines.join('\n')
}
