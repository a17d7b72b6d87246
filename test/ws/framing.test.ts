import { createHash } from 'node:crypto'
import { test } from 'tap'
import { DeviceListAuthenticator } from '../../lib/auth/device-list.js'
import { isCheckFailure } from '../../lib/auth/types.js'
import { parseClientFrame } from '../../lib/session/framing.js'
import { canTransition, CONNECTION_STATES } from '../../lib/registry.js'
import { SESSION_PHASES, SESSION_TRANSITIONS } from '../../lib/session/session.js'
import { parseTarget } from '../../lib/upstreams/index.js'

function parse (value: unknown): ReturnType<typeof parseClientFrame> {
  return parseClientFrame(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), false)
}

test('stream ids: a 1-64 character string or a non-negative safe integer', async (t) => {
  for (const id of ['a', 'x'.repeat(64), 0, 1, Number.MAX_SAFE_INTEGER, 'ü-ñ']) {
    t.ok(parse({ type: 'stream_close', stream_id: id }).ok, JSON.stringify(id))
  }
  for (const id of ['', 'x'.repeat(65), -1, 1.5, 2 ** 53, 1e308, null, true, [], {}]) {
    t.notOk(parse({ type: 'stream_close', stream_id: id }).ok, JSON.stringify(id))
  }
  t.notOk(parse('{"type":"stream_close","stream_id":1e400}').ok, 'Infinity')
})

test('stream_data: standard base64 with padding only', async (t) => {
  for (const data of ['', 'QQ==', 'QUI=', 'QUJD', 'aGVsbG8gd29ybGQ=', '+/+/']) {
    t.ok(parse({ type: 'stream_data', stream_id: 1, data }).ok, data)
  }
  for (const data of ['Q', 'QQ', 'QQ=', 'Q===', '====', 'QQ==QQ==', 'aGVs bG8=', '-_-_', 'QUJD\n', 12, null]) {
    const r = parse({ type: 'stream_data', stream_id: 1, data })
    t.notOk(r.ok, JSON.stringify(data))
    if (!r.ok) t.equal(r.streamId, 1, 'the error names the stream')
  }
})

test('bad frames say why', async (t) => {
  t.match(parse('nope'), { ok: false, message: /not valid JSON/ })
  t.match(parse('[1]'), { ok: false, message: /JSON object, got an array/ })
  t.match(parse('null'), { ok: false, message: /got null/ })
  t.match(parse({ stream_id: 1 }), { ok: false, message: /no string "type"/ })
  t.match(parse({ type: 'teleport' }), { ok: false, message: /unknown frame type "teleport"/ })
  t.match(parse({ type: 'stream_open', stream_id: 1, upstrem: 'echo' }), { ok: false, message: /upstrem/ })
  t.match(parse({ type: 'hello', device_id: 'd' }), { ok: false, message: /token/ })
  t.match(parseClientFrame(Buffer.from('{"type":"ping"}'), true), { ok: false, message: /binary/ })
  t.match(parse({ type: 'ping', anything: [1, { x: 2 }] }), { ok: true })
  t.match(parse({ type: 'x'.repeat(10_000) }), { ok: false, message: /^.{0,120}$/ })
})

test('tcp targets: host:port and [v6]:port, lower-cased', async (t) => {
  t.same(parseTarget('Example.COM:443'), { key: 'example.com:443', host: 'example.com', port: 443 })
  t.same(parseTarget('[::1]:8080'), { key: '[::1]:8080', host: '::1', port: 8080 })
  t.same(parseTarget('127.0.0.1:22'), { key: '127.0.0.1:22', host: '127.0.0.1', port: 22 })
  for (const bad of ['host', 'host:', ':80', 'host:0', 'host:65536', 'host:80:80', 'a b:80', 'a/b:80', '::1:80', 'host:80 ']) {
    t.equal(parseTarget(bad), undefined, bad)
  }
})

test('embedded device list: plain and sha256 tokens, one reason for every refusal', async (t) => {
  const auth = new DeviceListAuthenticator([
    { device_id: 'p', token: 'plain', user_id: 'u1', subscription_status: 'trial' },
    { device_id: 'h', token_sha256: createHash('sha256').update('hashed').digest('hex'), user_id: 'u2' }
  ])
  t.same(await auth.validate('p', 'plain'), { allowed: true, user_id: 'u1', subscription_status: 'trial' })
  t.same(await auth.validate('h', 'hashed'), { allowed: true, user_id: 'u2' })
  t.same(await auth.validate('p', 'hashed'), { allowed: false, reason: 'invalid_credentials' })
  t.same(await auth.validate('nobody', 'plain'), { allowed: false, reason: 'invalid_credentials' })
  t.same(await auth.validate('p', ''), { allowed: false, reason: 'invalid_credentials' })
  t.notOk(isCheckFailure({ allowed: false, reason: 'invalid_credentials' }))
  t.ok(isCheckFailure({ allowed: false, reason: 'backend_timeout' }))
})

test('session states: every state can close, closed is final', async (t) => {
  for (const [state, next] of Object.entries(SESSION_TRANSITIONS)) {
    if (state === 'closed') t.same(next, [])
    else t.ok(next.includes('closed'), `${state} → closed`)
  }
  t.same(SESSION_TRANSITIONS.running, ['paused', 'closed'])
  t.same(SESSION_TRANSITIONS.paused, ['running', 'closed'])
})

test('hello: exactly one kind of credentials; auth_refresh needs its token', async (t) => {
  for (const hello of [{ device_id: 'd', token: 't' }, { api_key: 'k' }, { access_token: 'a.b.c' }]) {
    t.ok(parse({ type: 'hello', ...hello }).ok, JSON.stringify(hello))
  }
  t.match(parse({ type: 'hello' }), { ok: false, message: /device_id and token, api_key, or access_token/ })
  t.match(parse({ type: 'hello', token: 't' }), { ok: false, message: /device_id: required/ })
  t.match(parse({ type: 'hello', api_key: 'k', access_token: 'a' }), { ok: false, message: /exactly one/ })
  t.match(parse({ type: 'hello', device_id: 'd', token: 't', access_token: 'a' }), { ok: false, message: /exactly one/ })
  t.match(parse({ type: 'hello', api_key: '' }), { ok: false, message: /api_key/ })
  t.ok(parse({ type: 'auth_refresh', refresh_token: 'r' }).ok)
  t.match(parse({ type: 'auth_refresh' }), { ok: false, message: /refresh_token/ })
  t.match(parse({ type: 'auth_refresh', refresh_token: 'r', extra: 1 }), { ok: false, message: /extra/ })
})

test('session phases are the registry states seen from the client: every phase move is a registry move', async (t) => {
  for (const [phase, next] of Object.entries(SESSION_TRANSITIONS)) {
    for (const to of next) {
      const moves = CONNECTION_STATES.some(a => SESSION_PHASES[a] === phase && CONNECTION_STATES.some(b => SESSION_PHASES[b] === to && canTransition(a, b)))
      t.ok(moves, `${phase} → ${to}`)
    }
  }
  t.equal(SESSION_PHASES.refreshing, 'running')
})
