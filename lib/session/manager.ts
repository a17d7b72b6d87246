import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type { DeviceAuthenticator } from '../auth/types.js'
import type { UpstreamRegistry } from '../upstreams/index.js'
import type { SessionMetrics } from './metrics.js'
import { Session, type SessionHost, type SessionLimits } from './session.js'

export interface SessionManagerOptions {
  limits: SessionLimits
  auth: DeviceAuthenticator
  upstreams: UpstreamRegistry
  metrics: SessionMetrics
}

export interface SessionManagerStats {
  /** Open `/ws` connections, authenticated or not. */
  connections: number
  /** Authenticated sessions (running or paused). */
  sessions: number
  /** Open streams over all sessions. */
  streams: number
}

/** Every `/ws` connection and its session, in memory. */
export class SessionManager implements SessionHost {
  readonly limits: SessionLimits
  readonly auth: DeviceAuthenticator
  readonly upstreams: UpstreamRegistry
  readonly metrics: SessionMetrics
  private readonly connections = new Set<Session>()
  private readonly sessions = new Map<string, Session>()

  constructor (opts: SessionManagerOptions) {
    this.limits = opts.limits
    this.auth = opts.auth
    this.upstreams = opts.upstreams
    this.metrics = opts.metrics
  }

  /** Takes a freshly upgraded socket; the session waits for its hello. */
  accept (socket: WebSocket, log: FastifyBaseLogger): Session {
    const session = new Session(socket, this, log)
    this.connections.add(session)
    return session
  }

  /** An authenticated session by its `session_id`. */
  get (sessionId: string): Session | undefined {
    return this.sessions.get(sessionId)
  }

  list (): Session[] {
    return [...this.sessions.values()]
  }

  stats (): SessionManagerStats {
    let streams = 0
    for (const session of this.connections) streams += session.streamCount
    return { connections: this.connections.size, sessions: this.sessions.size, streams }
  }

  /** Closes every connection (shutdown); each drops its streams. */
  closeAll (code: number, reason: string): void {
    for (const session of [...this.connections]) session.close(code, reason)
  }

  sessionStarted (session: Session): void {
    this.sessions.set(session.id, session)
    this.metrics.activeSessions.inc()
  }

  sessionEnded (session: Session): void {
    this.connections.delete(session)
    if (this.sessions.delete(session.id)) this.metrics.activeSessions.dec()
  }
}
