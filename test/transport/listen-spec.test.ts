import t from 'tap'
import { advertisedHostport, formatHostport, parseListenSpec } from '../../src/transport/listen-spec.js'

t.test('parseListenSpec accepts the documented forms', async (t) => {
  t.same(parseListenSpec('udp:127.0.0.1:5060', 'public'), { proto: 'udp', host: '127.0.0.1', port: 5060, side: 'public' })
  t.same(parseListenSpec('tcp:[::1]:5070', 'internal'), { proto: 'tcp', host: '::1', port: 5070, side: 'internal' })
  t.same(parseListenSpec('udp:127.0.0.1', 'public'), { proto: 'udp', host: '127.0.0.1', port: 5060, side: 'public' })
  t.same(parseListenSpec('udp:[::1]', 'public'), { proto: 'udp', host: '::1', port: 5060, side: 'public' })
  t.same(parseListenSpec('UDP:0.0.0.0:0', 'public').proto, 'udp')
  t.same(parseListenSpec('udp:0.0.0.0:5060 advertise 203.0.113.7:5080', 'public').advertise, '203.0.113.7:5080')
})

t.test('parseListenSpec rejects bad input with a message naming it', async (t) => {
  for (const bad of ['sctp:127.0.0.1:5060', 'udp:', 'udp:127.0.0.1:99999', 'udp:127.0.0.1:x', 'udp:[::1', 'udp:[::1]5060',
    'tcp:example.com:5060', '127.0.0.1:5060', 'udp:1.2.3.4:5060 advertise [::1']) {
    t.throws(() => parseListenSpec(bad, 'public'), { message: new RegExp(bad.slice(0, 5).replace(/[[\]]/g, '\\$&')) }, bad)
  }
})

t.test('hostport formatting', async (t) => {
  t.equal(formatHostport('::1', 5060), '[::1]:5060')
  t.equal(formatHostport('[::1]', 5060), '[::1]:5060')
  t.equal(formatHostport('127.0.0.1', 5060), '127.0.0.1:5060')
  t.equal(advertisedHostport({ proto: 'udp', host: '0.0.0.0', port: 0, side: 'public' }, 41000), '0.0.0.0:41000')
  t.equal(advertisedHostport({ proto: 'udp', host: '0.0.0.0', port: 0, side: 'public', advertise: '203.0.113.7' }, 41000), '203.0.113.7:41000')
  t.equal(advertisedHostport({ proto: 'udp', host: '::', port: 0, side: 'public', advertise: '2001:db8::1' }, 5060), '[2001:db8::1]:5060')
  t.equal(advertisedHostport({ proto: 'tcp', host: '::', port: 0, side: 'public', advertise: 'edge.example.com:5080' }, 5060), 'edge.example.com:5080')
})
