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

t.test('parseListenSpec: tls, ws and wss with their default ports and options', async (t) => {
  t.same(parseListenSpec('tls:127.0.0.1', 'public'), { proto: 'tls', host: '127.0.0.1', port: 5061, side: 'public' })
  t.same(parseListenSpec('ws:127.0.0.1', 'public').port, 80)
  t.same(parseListenSpec('WSS:[::1]', 'public'), { proto: 'wss', host: '::1', port: 443, side: 'public' })
  t.same(parseListenSpec('tls:0.0.0.0:5061 client-cert require advertise 203.0.113.7', 'internal'), {
    proto: 'tls', host: '0.0.0.0', port: 5061, side: 'internal', clientCert: 'require', advertise: '203.0.113.7',
  })
  t.same(parseListenSpec('wss:0.0.0.0:8443  path /sip   advertise 203.0.113.7:443', 'public'), {
    proto: 'wss', host: '0.0.0.0', port: 8443, side: 'public', path: '/sip', advertise: '203.0.113.7:443',
  })
  t.same(parseListenSpec('ws:127.0.0.1:8080 PATH /', 'public').path, '/')
  t.same(parseListenSpec('wss:127.0.0.1:8443 client-cert None', 'public').clientCert, 'none')
})

t.test('parseListenSpec: options that do not fit the transport, or malformed ones, are refused by name', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['udp:127.0.0.1:5060 path /sip', /unknown option 'path' for udp/],
    ['tcp:127.0.0.1:5060 client-cert require', /unknown option 'client-cert' for tcp/],
    ['ws:127.0.0.1:80 client-cert require', /unknown option 'client-cert' for ws \(advertise, path\)/],
    ['tls:127.0.0.1:5061 path /sip', /unknown option 'path' for tls \(advertise, client-cert\)/],
    ['ws:127.0.0.1:80 path sip', /path must start with '\/'/],
    ['ws:127.0.0.1:80 path /sip?x=1', /no query/],
    ['tls:127.0.0.1:5061 client-cert maybe', /client-cert is none or require, not 'maybe'/],
    ['wss:127.0.0.1:443 path', /expected proto:host/],
    ['wss:example.com:443', /not an IP address/],
    ['http:127.0.0.1:80', /proto udp, tcp, tls, ws or wss/],
  ]
  for (const [bad, why] of cases) t.throws(() => parseListenSpec(bad, 'public'), { message: why }, bad)
})
