// RecentSet: the compact tail of RFC 6026 timer L (keys of answered INVITEs), in two generations.
import t from 'tap'
import { RecentSet } from '../../src/proxy/recent_set.js'

t.test('a key is remembered for at least the span and forgotten by twice the span', async (t) => {
  const s = new RecentSet(1000)
  s.add('z9hG4bKa|127.0.0.1:5060|INVITE', 10_000)
  t.ok(s.has('z9hG4bKa|127.0.0.1:5060|INVITE', 10_999), 'within the span')
  s.add('z9hG4bKb|127.0.0.1:5060|INVITE', 11_500) // rolls: a moves to the previous generation
  t.ok(s.has('z9hG4bKa|127.0.0.1:5060|INVITE', 11_900), 'still there after the roll')
  t.notOk(s.has('z9hG4bKc|127.0.0.1:5060|INVITE', 11_900), 'an unknown key is not')
  t.notOk(s.has('z9hG4bKa|127.0.0.1:5060|INVITE', 12_600), 'gone one span after the roll')
  t.ok(s.has('z9hG4bKb|127.0.0.1:5060|INVITE', 12_600), 'the later key stays its span')
  t.notOk(s.has('z9hG4bKb|127.0.0.1:5060|INVITE', 20_000), 'after a long quiet period, nothing is left')
  t.equal(s.size, 0, 'both generations empty')
})
