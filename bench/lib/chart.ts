import { headlineRatio } from './targets.js'
import type { Results, Row } from './types.js'

/** A small SVG bar chart of the results, written by the bench itself (no chart library). */

const COLORS: Record<string, string> = {
  gateway: '#2563eb',
  'gateway-binary': '#1e40af',
  'gateway-token': '#60a5fa',
  'gateway-apikey': '#93c5fd',
  nginx: '#16a34a',
  bare: '#f59e0b',
  node: '#a855f7',
  native: '#db2777',
  direct: '#9ca3af',
  raw: '#9ca3af'
}

const SHORT: Record<string, string> = {
  gateway: 'gateway',
  'gateway-binary': 'gateway, binary frames',
  'gateway-token': 'gateway, auth (token)',
  'gateway-apikey': 'gateway, auth (API key)',
  nginx: 'nginx',
  bare: 'bare @fastify/http-proxy',
  node: 'plain Node (floor)',
  native: 'Node + C relay (bench/native)',
  direct: 'direct to upstream',
  raw: 'raw ws echo'
}

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function human (value: number, unit: string): string {
  if (unit === 'B/s') return `${(value / 1048576).toFixed(1)} MiB/s`
  if (value >= 10_000) return `${(value / 1000).toFixed(1)}k ${unit}`
  return `${Math.round(value)} ${unit}`
}

interface Panel { title: string, rows: Row[], subtitle: string, names?: Record<string, string> }

/** `a ÷ b` as the targets table gives it (headlineRatio). */
function ratio (results: Results, scenario: 'http' | 'ws' | 'streams', rows: Row[], a: string, b: string): string | undefined {
  const x = rows.find(r => r.target === a)
  const y = rows.find(r => r.target === b)
  if (x === undefined || y === undefined) return undefined
  return `${headlineRatio(results, scenario, x.case, x, y).ratio.toFixed(2)}×`
}

/** Font sizes (px) of a panel's title and of its ratio line: the style below and the width estimate use both. */
const TITLE_PX = 13
const RATIO_PX = 12

/**
 * A generous estimate of a text's width in px (no font metrics here): a sans-serif character
 * averages about half its font size, a bold one a little more.
 */
function textWidth (text: string, fontSize: number, bold: boolean): number {
  return text.length * fontSize * (bold ? 0.62 : 0.56)
}

export function chartSvg (results: Results): string {
  const panels: Panel[] = []
  const add = (scenario: 'http' | 'ws' | 'streams', kase: string, title: string): void => {
    const rows = (results.scenarios[scenario]?.rows ?? []).filter(r => r.case === kase)
    if (rows.length === 0) return
    const text = (a: string, b: string, before: string, after: string): string | undefined => {
      const r = ratio(results, scenario, rows, a, b)
      return r === undefined ? undefined : `${before}${r}${after}`
    }
    const parts = scenario === 'streams'
      ? [text('gateway-binary', 'raw', 'binary frames = ', ' raw'), text('gateway', 'raw', 'JSON frames = ', ' raw')]
      : [text('gateway', 'nginx', 'gateway = ', ' nginx'), text('gateway', 'bare', '', ' bare proxy')]
    const names = scenario === 'streams' ? { gateway: 'gateway, JSON frames' } : undefined
    panels.push({ title, rows, subtitle: parts.filter(p => p !== undefined).join(', '), names })
  }
  add('http', '100 B', 'HTTP, 100 B responses, 50 connections (req/s)')
  add('http', '10 KB', 'HTTP, 10 KB responses, 50 connections (req/s)')
  add('ws', '64 B', 'WebSocket echo, 64 B, 100 connections (messages/s)')
  add('ws', '4 KB', 'WebSocket echo, 4 KB, 100 connections (messages/s)')
  add('streams', '1 stream', '/ws streams, 1 stream on one socket (echoed bytes/s)')
  add('streams', '16 streams', '/ws streams, 16 streams on one socket (echoed bytes/s)')

  const width = 760
  const labelW = 200
  const barW = 400
  const rowH = 20
  const out: string[] = []
  let y = 50
  for (const p of panels) {
    const max = Math.max(...p.rows.map(r => r.value))
    out.push(`<text x="12" y="${y}" class="t">${esc(p.title)}</text>`)
    if (p.subtitle !== '') {
      // Beside the title when both fit on the line, else right-aligned on a line of its own.
      if (12 + textWidth(p.title, TITLE_PX, true) + 16 + textWidth(p.subtitle, RATIO_PX, false) > width - 12) y += 16
      out.push(`<text x="${width - 12}" y="${y}" class="s" text-anchor="end">${esc(p.subtitle)}</text>`)
    }
    y += 10
    for (const r of p.rows) {
      const w = max > 0 ? Math.max(1, (r.value / max) * barW) : 1
      out.push(`<text x="${labelW - 8}" y="${y + 14}" class="l" text-anchor="end">${esc(p.names?.[r.target] ?? SHORT[r.target] ?? r.target)}</text>`)
      out.push(`<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" rx="2" fill="${COLORS[r.target] ?? '#6b7280'}"/>`)
      out.push(`<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 14}" class="v">${esc(human(r.value, r.unit))}</text>`)
      y += rowH
    }
    y += 26
  }
  const idle = results.scenarios.idle?.idle
  if (idle !== undefined && Number.isFinite(idle.rssPerSession)) {
    out.push(`<text x="12" y="${y - 6}" class="t">Idle /ws sessions: ${esc(`${(idle.rssPerSession / 1024).toFixed(1)} KiB RSS per session at ${idle.authenticated.toLocaleString('en-US')} sessions, ${Math.round(idle.hellosPerSec).toLocaleString('en-US')} hellos/s`)}</text>`)
    y += 16
  }
  const m = results.machine
  const footer = `${m.cpuModel}, ${m.cores} cores, Node ${m.node}, commit ${m.commit}${m.dirty ? ' (dirty)' : ''}, ${results.ranAt.slice(0, 10)}`
  const height = y + 4
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif">
<style>.h{font-size:15px;font-weight:600;fill:#111827}.t{font-size:${TITLE_PX}px;font-weight:600;fill:#111827}.s{font-size:${RATIO_PX}px;fill:#2563eb}.l{font-size:12px;fill:#374151}.v{font-size:11px;fill:#374151}.f{font-size:10px;fill:#6b7280}</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="12" y="18" class="h">httvps gateway benchmarks (higher is better; ratios are from the same run)</text>
${out.join('\n')}
<text x="12" y="${height - 8}" class="f">${esc(footer)}</text>
</svg>
`
}
