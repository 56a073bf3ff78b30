import t from 'tap'
import { Backend, parseBackendUri, targetKey } from '../../src/dispatch/backend.js'

t.test('parseBackendUri accepts IP literals, ports and transport', async (t) => {
  t.same(parseBackendUri('sip:127.0.1.1:5080'), { proto: 'udp', host: '127.0.1.1', port: 5080 })
  t.same(parseBackendUri('sip:10.0.0.5'), { proto: 'udp', host: '10.0.0.5', port: 5060 })
  t.same(parseBackendUri('SIP:10.0.0.5:5062;transport=TCP;lr'), { proto: 'tcp', host: '10.0.0.5', port: 5062 })
  t.same(parseBackendUri('sip:asterisk@127.0.1.2;lr;transport=udp'), { proto: 'udp', host: '127.0.1.2', port: 5060 })
  t.same(parseBackendUri('<sip:[::1]:5070;transport=tcp>'), { proto: 'tcp', host: '::1', port: 5070 })
  t.same(parseBackendUri('sip:[0:0::1]'), { proto: 'udp', host: '::1', port: 5060 }, 'IPv6 canonicalised')
})

t.test('parseBackendUri rejects what it cannot route to', async (t) => {
  for (const bad of ['127.0.0.1:5060', 'http://127.0.0.1', 'sip:asterisk.local:5060', 'sip:::1', 'sip:[::1',
    'sip:127.0.0.1:0', 'sip:127.0.0.1:70000', 'sip:127.0.0.1:50a', 'sip:127.0.0.1;transport=sctp',
    'sips:127.0.0.1', 'sip:', 'sip:300.1.1.1', 'sip:[::1]x']) {
    t.throws(() => parseBackendUri(bad), /invalid backend URI/, bad)
  }
})

t.test('Backend key and eligibility keep admin and health apart', async (t) => {
  const b = new Backend({ id: 'a', set: 'pbx', uri: 'sip:127.0.1.1:5080', weight: 1, priority: 0, admin: 'active', source: 'static' })
  t.equal(b.key, 'udp:127.0.1.1:5080')
  t.equal(targetKey({ proto: 'tcp', host: '::1', port: 5060 }), 'tcp:[::1]:5060')
  t.equal(b.health, 'probing')
  t.ok(b.eligible, 'probing is eligible')
  b.health = 'down'
  t.notOk(b.eligible)
  b.health = 'up'
  b.admin = 'draining'
  t.notOk(b.eligible)
  b.admin = 'disabled'
  t.notOk(b.eligible)
})
