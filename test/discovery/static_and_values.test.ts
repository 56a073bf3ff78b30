// Pure parsing: static `--backend` entries, etcd keys and values, and the calls probe's parsing.
import t from 'tap'
import { staticBackends, StaticBackendError } from '../../src/discovery/static.js'
import { parseBackendUri, formatBackendUri, backendIdFromUri } from '../../src/discovery/backend_uri.js'
import { parseBackendValue, splitBackendKey } from '../../src/discovery/backend_value.js'
import { readActiveCalls } from '../../src/discovery/calls_probe.js'

t.test('staticBackends: weight/priority stripped from the URI, id is the canonical URI', async (t) => {
  const specs = staticBackends(['sip:127.0.1.2:5080;weight=2;priority=1', ' SIP:127.0.1.3;transport=TCP ', 'sip:[::1]:5090;lr'], 'pool')
  t.same(specs, [
    { id: 'sip:127.0.1.2:5080', set: 'pool', uri: 'sip:127.0.1.2:5080', weight: 2, priority: 1, admin: 'active', source: 'static' },
    { id: 'sip:127.0.1.3:5060;transport=tcp', set: 'pool', uri: 'sip:127.0.1.3:5060;transport=tcp', weight: 1, priority: 0, admin: 'active', source: 'static' },
    { id: 'sip:[::1]:5090;lr', set: 'pool', uri: 'sip:[::1]:5090;lr', weight: 1, priority: 0, admin: 'active', source: 'static' },
  ])
  t.equal(staticBackends(['sip:127.0.0.1'])[0]?.set, 'default')
})

t.test('staticBackends: clear errors naming the entry', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['127.0.1.2:5080', /must start with sip: or sips:/],
    ['sip:asterisk-1:5080', /IP literal/],
    ['sip:127.0.1.2:99999', /port 99999 out of range/],
    ['sip:127.0.1.2:50x', /bad port/],
    ['sip:127.0.1.2;weight=abc', /weight must be an integer/],
    ['sip:127.0.1.2;weight', /weight must be an integer/],
    ['sip:127.0.1.2;priority=-1', /priority must be an integer/],
    ['sip:127.0.1.2;weight=70000', /weight must be an integer from 0 to 65535/],
    ['sip:127.0.1.2;transport=sctp', /transport must be udp, tcp or tls/],
    ['sip:user@127.0.1.2', /user part/],
    ['sip:127.0.1.2?X=1', /headers/],
    ['sip:[::1', /unterminated IPv6/],
    ['sip:127.0.1.2;lr;lr', /duplicate URI parameter/],
    ['', /empty/],
  ]
  for (const [entry, re] of bad) {
    t.throws(() => staticBackends([entry]), re, entry)
    t.throws(() => staticBackends([entry]), StaticBackendError)
  }
  t.throws(() => staticBackends(['sip:127.0.1.2:5060', 'sip:127.0.1.2;weight=3']), /duplicate/)
  t.throws(() => staticBackends(['sip:127.0.1.2'], 'a/b'), /set name/)
})

t.test('backend URI canonical form and ids', async (t) => {
  const u = parseBackendUri('sips:[2001:db8::1]')
  if (typeof u === 'string') return t.fail(u)
  t.equal(formatBackendUri(u), 'sips:[2001:db8::1]:5061')
  t.equal(u.proto, 'tcp')
  t.equal(backendIdFromUri(u), '[2001:db8::1]:5061')
  const v = parseBackendUri('sip:127.0.0.1:5080;transport=tcp')
  if (typeof v === 'string') return t.fail(v)
  t.equal(backendIdFromUri(v), '127.0.0.1:5080;transport=tcp')
})

t.test('etcd keys and values', async (t) => {
  t.same(splitBackendKey('/p/', '/p/default/ast-1'), { set: 'default', id: 'ast-1' })
  t.same(splitBackendKey('/p/', '/p/default/a/b'), { set: 'default', id: 'a/b' })
  t.match(splitBackendKey('/p/', '/p/default'), /<prefix><set>\/<id>/)
  t.match(splitBackendKey('/p/', '/p/default/'), /<prefix><set>\/<id>/)
  t.match(splitBackendKey('/p/', '/p//x'), /<prefix><set>\/<id>/)

  t.match(parseBackendValue('s', 'i', '{"uri":"sip:127.0.0.1","state":"draining","weight":0}'), { id: 's/i', admin: 'draining', weight: 0, priority: 0 })
  t.match(parseBackendValue('s', 'i', '[]'), /JSON object/)
  t.match(parseBackendValue('s', 'i', 'null'), /JSON object/)
  t.match(parseBackendValue('s', 'i', '{"weight":1}'), /no string "uri"/)
  t.match(parseBackendValue('s', 'i', '{"uri":"sip:127.0.0.1","weight":1.5}'), /weight/)
  t.match(parseBackendValue('s', 'i', '{"uri":"sip:127.0.0.1","priority":"1"}'), /priority/)
  const hostile = parseBackendValue('s', 'i', '{"uri":"sip:127.0.0.1","__proto__":{"polluted":1},"constructor":{"x":1}}')
  if (typeof hostile === 'string') return t.fail(hostile)
  t.equal(Object.getPrototypeOf(hostile.extra), Object.prototype, 'extra prototype untouched')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no pollution')
  t.same(Object.keys(hostile.extra ?? {}).sort(), ['__proto__', 'constructor'], 'kept as plain data')
})

t.test('readActiveCalls parses the first integer and reports failures', async (t) => {
  t.same(await readActiveCalls({ uri: 'sip:127.0.0.1', callsCommand: "printf '3 active calls\\n9 calls processed\\n'" }), { calls: 3 })
  t.match(await readActiveCalls({ uri: 'sip:127.0.0.1', callsCommand: 'echo no calls here' }), { error: /no integer/ })
  t.match(await readActiveCalls({ uri: 'sip:127.0.0.1', callsCommand: 'exit 3' }), { error: /calls command failed/ })
  t.match(await readActiveCalls({ uri: 'sip:127.0.0.1' }), { error: /no calls source/ })
  t.match(await readActiveCalls({ uri: 'sip:127.0.0.1', edgeAdmin: ['http://127.0.0.1:1'], timeoutMs: 500 }), { error: /127\.0\.0\.1:1\/backends/ })
})
