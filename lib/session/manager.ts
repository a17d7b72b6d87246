import type { Counter } from 'prom-client'
import type { WebSocket } from 'ws'
import type { Authenticator } from '../auth/index.js'
import type { ConnectionRegistry } from '../registry.js'
import type { UpstreamRegistry } from '../upstreams/index.js'
import { Deadlines } from './deadlines.js'
import type { SessionMetrics } from './metrics.js'
import { Session, type SessionHost, type SessionLimits, type SessionOrigin } from './session.js'

export interface SessionManagerOptions {
  limits: SessionLimits
  authenticator: Authenticator
  /** Where every connection is registered from its upgrade to its close (admin API). */
  connections: ConnectionRegistry
  upstreams: UpstreamRegistry
  metrics: SessionMetrics
  tokenRefreshes: Counter<'result'>
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
  readonly authenticator: Authenticator
  readonly connections: ConnectionRegistry
  readonly upstreams: UpstreamRegistry
  readonly metrics: SessionMetrics
  readonly tokenRefreshes: Counter<'result'>
  readonly deadlines = new Deadlines<Session>()
  /** Every open `/ws` connection, authenticated or not. */
  private readonly open = new Set<Session>()
  private readonly sessions = new Map<string, Session>()

  constructor (opts: SessionManagerOptions) {
    this.limits = opts.limits
    this.authenticator = opts.authenticator
    this.connections = opts.connections
    this.upstreams = opts.upstreams
    this.metrics = opts.metrics
    this.tokenRefreshes = opts.tokenRefreshes
  }

  /** Takes a freshly upgraded socket (registered at once, state `initial`); the session waits for its hello. */
  accept (socket: WebSocket, origin: SessionOrigin): Session {
    const session = new Session(socket, this, origin)
    this.open.add(session)
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
    for (const session of this.open) streams += session.streamCount
    return { connections: this.open.size, sessions: this.sessions.size, streams }
  }

  /** Closes every connection (shutdown); each drops its streams. */
  closeAll (code: number, reason: string): void {
    for (const session of [...this.open]) session.close(code, reason)
  }

  sessionStarted (session: Session): void {
    this.sessions.set(session.id, session)
    this.metrics.activeSessions.inc()
  }

  sessionEnded (session: Session): void {
    this.open.delete(session)
    if (this.sessions.delete(session.id)) this.metrics.activeSessions.dec()
  }
}
