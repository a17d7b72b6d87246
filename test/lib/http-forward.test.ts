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
