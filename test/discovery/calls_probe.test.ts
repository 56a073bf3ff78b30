// A draining registrant asks the edges how many calls its backend still has; the admin API may want a token.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { readActiveCalls } from '../../src/discovery/calls_probe.js'
import { parseRegisterArgs } from '../../src/discovery/register.js'

t.test('edge admin with a bearer token', async (t) => {
  const server = createServer((req, res) => {
    if (req.headers.authorization !== 'Bearer s3cret') {
      res.writeHead(401).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify([{ uri: 'sip:127.0.1.1:5080', activeCalls: 3 }, { uri: 'sip:127.0.1.2:5080', activeCalls: 9 }]))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.same(await readActiveCalls({ edgeAdmin: [url], uri: 'sip:127.0.1.1:5080', edgeAdminToken: 's3cret' }), { calls: 3 })
  const denied = await readActiveCalls({ edgeAdmin: [url], uri: 'sip:127.0.1.1:5080' })
  t.match(denied, { error: /HTTP 401/ }, 'without the token: a clear error, not a count')
})

t.test('--edge-admin-token and SIPEDGE_ADMIN_TOKEN', async (t) => {
  const base = ['--etcd', 'http://127.0.0.1:2379', '--set', 'default', '--uri', 'sip:127.0.1.1:5080', '--edge-admin', 'http://127.0.0.1:8080']
  t.match(parseRegisterArgs([...base, '--edge-admin-token', 'a'], {}), { edgeAdminToken: 'a' })
  t.match(parseRegisterArgs(base, { SIPEDGE_ADMIN_TOKEN: 'b' }), { edgeAdminToken: 'b' })
})
