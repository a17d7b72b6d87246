import { test } from 'tap'
import { gatewayLocation } from '../../lib/http-forward.js'

test('gatewayLocation maps whole segments of the rewrite prefix only', async (t) => {
  t.equal(gatewayLocation('/v2/x', '/api', '/v2'), '/api/x')
  t.equal(gatewayLocation('/v2#top', '/api', '/v2'), '/api#top')
  t.equal(gatewayLocation('/v2x', '/api', '/v2'), '/v2x')
  // Upstream root: every absolute path is under it; relative and absolute URLs are not touched.
  t.equal(gatewayLocation('/x', '/api', ''), '/api/x')
  t.equal(gatewayLocation('/', '/api', ''), '/api/')
  t.equal(gatewayLocation('next', '/api', ''), 'next')
  t.equal(gatewayLocation('https://h/x', '/api', ''), 'https://h/x')
  t.equal(gatewayLocation('//h/x', '/api', ''), '//h/x')
})

test('gatewayLocation maps absolute URLs at the upstream origin; never yields //host', async (t) => {
  const up = 'http://127.0.0.1:9001'
  t.equal(gatewayLocation('http://127.0.0.1:9001/v2/x?q=1', '/api', '/v2', up), '/api/x?q=1')
  t.equal(gatewayLocation('HTTP://127.0.0.1:9001/v2', '/api', '/v2', up), '/api')
  t.equal(gatewayLocation('http://127.0.0.1:9001/other', '/api', '/v2', up), 'http://127.0.0.1:9001/other', 'not under the rewrite prefix: as sent')
  t.equal(gatewayLocation('http://127.0.0.1:90011/v2/x', '/api', '/v2', up), 'http://127.0.0.1:90011/v2/x', 'another port')
  t.equal(gatewayLocation('http://127.0.0.1:9001', '/api', '', up), 'http://127.0.0.1:9001')
  t.equal(gatewayLocation('http://127.0.0.1:9001/x', '/api', '', up), '/api/x')
  t.equal(gatewayLocation('/v2//evil.example/', '/', '/v2'), '/v2//evil.example/', 'a result reading as //host is left alone')
})
