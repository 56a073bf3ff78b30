// Inbound trunk matching: which set a source's requests go to (config order decides), IPv4 and IPv6.
import t from 'tap'
import { InboundTrunks, ipv4ToInt } from '../../src/proxy/inbound_trunks.js'

t.test('first matching entry decides; no set = the default set; others are no trunk', async (t) => {
  const tr = new InboundTrunks([
    { set: undefined, cidr: '198.51.100.0/28' },
    { set: 'b', cidr: '198.51.100.9' },
    { set: 'v6', cidr: '2001:db8::/32' },
    { set: 'all', cidr: '0.0.0.0/0' },
  ])
  t.equal(tr.match('198.51.100.9'), '', 'inside the /28 listed first: the default set')
  t.equal(tr.match('198.51.100.15'), '')
  t.equal(tr.match('198.51.100.16'), 'all', 'outside the /28: the catch-all')
  t.equal(tr.match('2001:db8::1'), 'v6')
  t.equal(tr.match('2001:db9::1'), undefined)
  const narrow = new InboundTrunks([{ set: 'b', cidr: '203.0.113.9' }])
  t.equal(narrow.match('203.0.113.9'), 'b')
  t.equal(narrow.match('203.0.113.90'), undefined, 'a /32 is that address only')
  t.equal(narrow.match('::ffff:203.0.113.9'), undefined, 'an IPv4-mapped IPv6 text is not an IPv4 entry')
})

t.test('IPv4 text to integer: dotted quads only', async (t) => {
  t.equal(ipv4ToInt('255.255.255.255'), 0xffffffff)
  t.equal(ipv4ToInt('10.0.0.1'), 0x0a000001)
  for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '1..2.3', '', '::1', '1.2.3.4 ', '01234.1.1.1']) t.equal(ipv4ToInt(bad), -1, JSON.stringify(bad))
})
