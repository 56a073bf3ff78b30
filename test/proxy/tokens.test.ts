// Record-Route and Contact tokens: opaque (no address in clear), authenticated (a forged or altered token
// never opens), shared by edges with the same secret; Call-ID masking is deterministic and reversible.
import t from 'tap'
import { TokenCodec } from '../../src/proxy/tokens.js'

const backend = { proto: 'udp' as const, address: '10.0.1.5', port: 5080 }
const client = { proto: 'tcp' as const, address: '203.0.113.7', port: 40123 }

t.test('route tokens', async (t) => {
  const a = new TokenCodec('secret-one-0123456789')
  const tok = a.sealRoute(backend, client, true)
  t.notMatch(tok, /10\.0\.1\.5|203\.0\.113\.7/, 'no address in clear')
  t.match(tok, /^[A-Za-z0-9_-]+$/, 'a URI-safe token')
  t.match(new TokenCodec('secret-one-0123456789').openRoute(tok), { internal: backend, external: client, outbound: true }, 'another edge with the secret opens it')
  t.equal(new TokenCodec('secret-two-0123456789').openRoute(tok), 'forged', 'another secret does not')
  for (let i = 0; i < tok.length; i += 7) {
    const c = tok[i] === 'A' ? 'B' : 'A'
    t.equal(a.openRoute(tok.slice(0, i) + c + tok.slice(i + 1)), 'forged', `byte ${i} changed`)
  }
  t.equal(a.openRoute('short'), 'forged')
  t.equal(a.openContact(tok), 'forged', 'a route token is not a contact token')
})

t.test('contact tokens and staleness', async (t) => {
  const a = new TokenCodec('secret-one-0123456789', 3600)
  const tok = a.sealContact('sip:3001@10.0.1.5:5080;transport=udp', backend)
  t.match(a.openContact(tok), { uri: 'sip:3001@10.0.1.5:5080;transport=udp', peer: backend })
  const realNow = Date.now
  Date.now = () => realNow() + 2 * 3600_000
  try {
    t.equal(new TokenCodec('secret-one-0123456789', 3600).openContact(tok), 'stale', 'older than maxAge: stale')
    t.equal(a.openContact(tok), 'stale', 'also when the opening edge has it cached')
  } finally {
    Date.now = realNow
  }
})

t.test('Call-ID masking', async (t) => {
  const a = new TokenCodec('secret-one-0123456789')
  const m = a.maskCallId('1-2345@10.0.1.5')
  t.equal(a.maskCallId('1-2345@10.0.1.5'), m, 'deterministic: every message of the dialog carries the same value')
  t.notMatch(m, /10\.0\.1\.5/)
  t.equal(a.unmaskCallId(m), '1-2345@10.0.1.5')
  t.equal(new TokenCodec('secret-two-0123456789').unmaskCallId(m), undefined, 'not with another secret')
  t.equal(a.unmaskCallId('se1.' + 'A'.repeat(40)), undefined, 'a made-up value does not unmask')
  t.equal(a.unmaskCallId('abc@host'), undefined, 'an unmasked Call-ID is left alone')
})

t.test('route and contact tokens carry every transport of the flow (TLS, WS, WSS)', async (t) => {
  const a = new TokenCodec('secret-one-0123456789')
  for (const proto of ['udp', 'tcp', 'tls', 'ws', 'wss'] as const) {
    const flow = { proto, address: '203.0.113.7', port: 40123 }
    t.match(a.openRoute(a.sealRoute(backend, flow)), { internal: backend, external: flow }, `route ${proto}`)
    t.match(a.openContact(a.sealContact('sip:agent@x.invalid;transport=ws', flow)), { peer: flow }, `contact ${proto}`)
  }
})
