import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { CloseCode, ConnectionNotFoundError, IllegalTransitionError } from './errors.js'
import type { AuthMethod, Principal, ReauthResult } from './auth/principal.js'
import { matchesPrincipal, type PrincipalFilter } from './auth/cache.js'

export type ConnectionKind = 'session' | 'ws_proxy'
export const CONNECTION_STATES = ['initial', 'authorizing', 'running', 'paused', 'refreshing', 'stopping', 'closed'] as const
export type ConnectionState = typeof CONNECTION_STATES[number]

/**
 * The whole connection state machine: each state and where it may go next.
 * initial → authorizing → running ⇄ paused, running → refreshing → running,
 * any → stopping → closed.
 */
export const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  initial: ['authorizing', 'stopping'],
  authorizing: ['running', 'stopping'],
  running: ['paused', 'refreshing', 'stopping'],
  paused: ['running', 'stopping'],
  refreshing: ['running', 'stopping'],
  stopping: ['closed'],
  closed: []
}

export function canTransition (from: ConnectionState, to: ConnectionState): boolean {
  return TRANSITIONS[from].includes(to)
}

/** What the owner of a connection lets the registry (and so the admin API) do with it. */
export interface ConnectionControls {
  /** Stop forwarding both ways; the socket stays open and data is held. */
  pause: () => void
  /** Deliver what was held, in order, and forward again. */
  resume: () => void
  /** Close the connection; the owner calls `Connection.close()` once it is closed. */
  stop: (code: number, reason: string) => void
  /**
   * Re-check the connection's credential (for instance ask the client for a new token).
   * The owner deals with `refresh_required` itself; `refused` makes the registry stop it.
   */
  reauthorize?: () => Promise<ReauthResult>
}

/** The JSON view of a connection (admin API). */
export interface ConnectionInfo {
  id: string
  kind: ConnectionKind
  route: string
  remote_address: string
  user_id: string | null
  device_id: string | null
  method: AuthMethod | null
  state: ConnectionState
  created_at: string
  last_active_at: string
  bytes_in: number
  bytes_out: number
  messages_in: number
  messages_out: number
  open_streams: number
}

export interface OpenConnection {
  kind: ConnectionKind
  /** The route prefix (ws_proxy) or endpoint path (session). */
  route: string
  remoteAddress: string
  principal?: Principal
  controls?: ConnectionControls
}

export interface ConnectionQuery {
  user_id?: string
  device_id?: string
  state?: ConnectionState
  limit?: number
  cursor?: string
}

/** Outcome of re-checking the live connections of a principal. */
export interface RecheckSummary {
  checked: number
  stopped: number
  refresh_required: number
  failed: number
}

/** One live connection. Its owner moves it through the states and counts its traffic. */
export class Connection {
  readonly id = randomUUID()
  readonly createdAt = Date.now()
  lastActiveAt = this.createdAt
  state: ConnectionState = 'initial'
  bytesIn = 0
  bytesOut = 0
  messagesIn = 0
  messagesOut = 0
  openStreams = 0
  readonly kind: ConnectionKind
  readonly route: string
  readonly remoteAddress: string
  principal: Principal | undefined
  controls: ConnectionControls | undefined

  constructor (private readonly registry: ConnectionRegistry, readonly seq: number, opts: OpenConnection) {
    this.kind = opts.kind
    this.route = opts.route
    this.remoteAddress = opts.remoteAddress
    this.principal = opts.principal
    this.controls = opts.controls
  }

  /** Moves to `to`, or throws `ILLEGAL_TRANSITION` (409) when the table does not allow it. */
  transition (to: ConnectionState): void {
    this.registry.transition(this, to)
  }

  /** Records who the connection belongs to (after authorizing or a refresh). */
  authorize (principal: Principal): void {
    this.principal = principal
  }

  attach (controls: ConnectionControls): void {
    this.controls = controls
  }

  /** `messages` messages of `bytes` payload bytes in all came from the client. */
  countIn (bytes: number, messages = 1): void {
    this.bytesIn += bytes
    this.messagesIn += messages
    this.lastActiveAt = Date.now()
  }

  /** `messages` messages of `bytes` payload bytes in all went to the client. */
  countOut (bytes: number, messages = 1): void {
    this.bytesOut += bytes
    this.messagesOut += messages
    this.lastActiveAt = Date.now()
  }

  setOpenStreams (count: number): void {
    this.openStreams = count
  }

  /** The connection is gone: through `stopping` to `closed`, and out of the registry. Idempotent. */
  close (): void {
    if (this.state === 'closed') return
    if (this.state !== 'stopping') this.transition('stopping')
    this.transition('closed')
  }

  info (): ConnectionInfo {
    return {
      id: this.id,
      kind: this.kind,
      route: this.route,
      remote_address: this.remoteAddress,
      user_id: this.principal?.user_id ?? null,
      device_id: this.principal?.device_id ?? null,
      method: this.principal?.method ?? null,
      state: this.state,
      created_at: new Date(this.createdAt).toISOString(),
      last_active_at: new Date(this.lastActiveAt).toISOString(),
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      messages_in: this.messagesIn,
      messages_out: this.messagesOut,
      open_streams: this.openStreams
    }
  }
}

function encodeCursor (seq: number): string {
  return Buffer.from(String(seq)).toString('base64url')
}

function decodeCursor (cursor: string | undefined): number {
  if (cursor === undefined || cursor === '') return 0
  const seq = Number(Buffer.from(cursor, 'base64url').toString())
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : 0
}

/**
 * Every live `/ws` session and proxied WebSocket connection, by id. The only place
 * connection states change; each change is checked against `TRANSITIONS` and logged.
 */
export class ConnectionRegistry {
  private readonly connections = new Map<string, Connection>()
  private seq = 0

  constructor (private readonly log: FastifyBaseLogger) {}

  /** Registers a new connection in state `initial`. */
  open (opts: OpenConnection): Connection {
    const connection = new Connection(this, ++this.seq, opts)
    this.connections.set(connection.id, connection)
    this.log.info({ connection_id: connection.id, kind: connection.kind, route: connection.route, state: 'initial' }, 'connection registered')
    return connection
  }

  transition (connection: Connection, to: ConnectionState): void {
    const from = connection.state
    if (!canTransition(from, to)) throw new IllegalTransitionError(connection.id, from, to)
    connection.state = to
    this.log.info({ connection_id: connection.id, kind: connection.kind, from, to }, 'connection state')
    if (to === 'closed') this.connections.delete(connection.id)
  }

  get (id: string): Connection | undefined {
    return this.connections.get(id)
  }

  /** The connection, or `CONNECTION_NOT_FOUND` (404). */
  require (id: string): Connection {
    const connection = this.connections.get(id)
    if (connection === undefined) throw new ConnectionNotFoundError(id)
    return connection
  }

  /** Connections in registration order, filtered, a page at a time (`next_cursor` is null on the last page). */
  list (query: ConnectionQuery = {}): { connections: ConnectionInfo[], next_cursor: string | null } {
    const limit = query.limit ?? 50
    const after = decodeCursor(query.cursor)
    const page: Connection[] = []
    let more = false
    for (const connection of this.connections.values()) {
      if (connection.seq <= after || !this.matches(connection, query)) continue
      if (page.length === limit) {
        more = true
        break
      }
      page.push(connection)
    }
    const last = page.at(-1)
    return { connections: page.map(c => c.info()), next_cursor: more && last !== undefined ? encodeCursor(last.seq) : null }
  }

  /** The live connections of a user or a device. */
  find (filter: PrincipalFilter): Connection[] {
    return [...this.connections.values()].filter(c => c.principal !== undefined && matchesPrincipal(c.principal, filter))
  }

  pause (id: string): Connection {
    return this.control(id, 'paused', c => c.pause())
  }

  resume (id: string): Connection {
    return this.control(id, 'running', c => c.resume())
  }

  /** Moves to `stopping` and asks the owner to close; the entry goes once the owner reports it closed. */
  stop (id: string, code: number, reason: string): Connection {
    const connection = this.control(id, 'stopping', c => c.stop(code, reason))
    if (connection.controls === undefined) connection.close()
    return connection
  }

  /**
   * Re-checks the live connections of a principal at once: with the owner's
   * `reauthorize` when it has one, otherwise with `fallback`. Refused ones are stopped;
   * without an owner's check, so are those that would need the client to refresh.
   */
  async recheck (filter: PrincipalFilter, fallback: (principal: Principal) => Promise<ReauthResult>): Promise<RecheckSummary> {
    const live = this.find(filter).filter(c => c.state !== 'stopping' && c.state !== 'closed')
    const summary: RecheckSummary = { checked: live.length, stopped: 0, refresh_required: 0, failed: 0 }
    await Promise.all(live.map(async (connection) => {
      const own = connection.controls?.reauthorize
      let result: ReauthResult
      try {
        result = own !== undefined ? await own() : await fallback(connection.principal as Principal)
      } catch (err) {
        // The authority could not be asked: keep the connection rather than cut everyone on a backend hiccup.
        summary.failed++
        this.log.warn({ err, connection_id: connection.id }, 'connection re-check failed')
        return
      }
      if (result.status === 'allowed') {
        connection.authorize(result.principal)
        return
      }
      if (result.status === 'refresh_required') summary.refresh_required++
      if (result.status === 'refused' && !this.connections.has(connection.id)) {
        // The owner's check closed it already, with its own reason (a /ws session: auth_revoked).
        summary.stopped++
        return
      }
      if ((result.status === 'refused' || own === undefined) && canTransition(connection.state, 'stopping') && this.connections.has(connection.id)) {
        this.stop(connection.id, CloseCode.POLICY_VIOLATION, result.status === 'refused' ? 'authorization_revoked' : 'reauthentication_required')
        summary.stopped++
      }
    }))
    return summary
  }

  /** Connection count per state (metrics). */
  countByState (): Record<ConnectionState, number> {
    const counts = Object.fromEntries(CONNECTION_STATES.map(s => [s, 0])) as Record<ConnectionState, number>
    for (const connection of this.connections.values()) counts[connection.state]++
    return counts
  }

  get size (): number {
    return this.connections.size
  }

  private matches (connection: Connection, query: ConnectionQuery): boolean {
    if (query.state !== undefined && connection.state !== query.state) return false
    if (query.user_id !== undefined && connection.principal?.user_id !== query.user_id) return false
    if (query.device_id !== undefined && connection.principal?.device_id !== query.device_id) return false
    return true
  }

  private control (id: string, to: ConnectionState, act: (controls: ConnectionControls) => void): Connection {
    const connection = this.require(id)
    // State first: an owner's control may report the close at once, which needs `stopping`.
    this.transition(connection, to)
    if (connection.controls !== undefined) act(connection.controls)
    return connection
  }
}
