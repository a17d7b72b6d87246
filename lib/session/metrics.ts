import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

/** The gateway's own metrics for `/ws` sessions and device auth (names in docs/protocol.md). */
export interface SessionMetrics {
  handshakes: Counter<'result'>
  handshakeDuration: Histogram
  backendErrors: Counter<'reason'>
  activeSessions: Gauge
  activeStreams: Gauge
  bytesIn: Counter
  bytesOut: Counter
  streamBufferOverflows: Counter
  badFrames: Counter
  errorFrames: Counter<'code'>
}

export type HandshakeResult = 'accepted' | 'rejected' | 'error'

export function createSessionMetrics (registry: Registry): SessionMetrics {
  const registers = [registry]
  const handshakes = new Counter({
    name: 'httvps_gateway_handshakes_total',
    help: 'hello handshakes by result: accepted, rejected (credentials refused) or error (the check could not be made)',
    labelNames: ['result'] as const,
    registers
  })
  // Every result shows from the start, so a dashboard's rate() has a series before the first refusal.
  for (const result of ['accepted', 'rejected', 'error']) handshakes.inc({ result }, 0)
  return {
    handshakes,
    handshakeDuration: new Histogram({
      name: 'httvps_gateway_handshake_duration_seconds',
      help: 'time from a hello frame to its auth_result',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers
    }),
    backendErrors: new Counter({
      name: 'httvps_gateway_backend_errors_total',
      help: 'device checks the backend could not answer, by reason (backend_unavailable, backend_timeout, backend_error)',
      labelNames: ['reason'] as const,
      registers
    }),
    activeSessions: new Gauge({ name: 'httvps_gateway_active_sessions', help: 'authenticated /ws sessions', registers }),
    activeStreams: new Gauge({ name: 'httvps_gateway_active_streams', help: 'open streams over all sessions', registers }),
    bytesIn: new Counter({ name: 'httvps_gateway_bytes_in_total', help: 'stream bytes received from clients (decoded)', registers }),
    bytesOut: new Counter({ name: 'httvps_gateway_bytes_out_total', help: 'stream bytes sent to clients (decoded)', registers }),
    streamBufferOverflows: new Counter({
      name: 'httvps_gateway_stream_buffer_overflows_total',
      help: 'streams closed because data arrived over the buffer bound before the upstream was ready',
      registers
    }),
    badFrames: new Counter({ name: 'httvps_gateway_bad_frames_total', help: 'client frames refused as BAD_FRAME', registers }),
    errorFrames: new Counter({
      name: 'httvps_gateway_error_frames_total',
      help: 'error frames sent to clients, by code',
      labelNames: ['code'] as const,
      registers
    })
  }
}
