// The rtpengine instance of a call travels in the Record-Route token, so any edge with the secret
// (or this one after a restart) sends the call's answer, re-offers and delete to the right instance.
import t from 'tap'
import { TokenCodec } from '../../src/proxy/tokens.js'
import { NgClient } from '../../src/media/ng_client.js'
import { RtpenginePool, rtpengineId } from '../../src/media/rtpengine_pool.js'

const internal = { proto: 'udp' as const, address: '127.0.1.7', port: 5080 }
const external = { proto: 'tcp' as const, address: '127.0.4.5', port: 40123 }

t.test('route token with a media instance: sealed by one edge, opened by another', async (t) => {
  const id = rtpengineId({ host: '127.0.0.1', port: 22222 })
  const a = new TokenCodec('shared-secret')
  const b = new TokenCodec('shared-secret')
  const plain = a.sealRoute(internal, external, false)
  const withMedia = a.sealRoute(internal, external, false, id)
  t.not(withMedia, plain, 'a different token (the cache keys on the instance too)')
  t.ok(withMedia.length - plain.length <= 8, `${withMedia.length - plain.length} more characters in the token`)
  const opened = b.openRoute(withMedia)
  t.match(opened, { internal, external, outbound: false, media: id })
  // The pool of the other edge finds the instance from the id alone.
  const pool = new RtpenginePool(new NgClient(), ['udp:127.0.0.1:22223', 'udp:127.0.0.1:22222'])
  t.equal(pool.get((opened as { media: string }).media)?.port, 22222)
  const old = b.openRoute(plain)
  t.equal(typeof old === 'object' && 'media' in old, false, 'tokens without media open as before')
  t.match(b.openRoute(a.sealRoute(internal, external, true, id)), { outbound: true, media: id })
})

t.test('bad ids are refused at sealing; altered tokens stay forged', async (t) => {
  const a = new TokenCodec('s')
  for (const bad of ['', 'abc', 'abcdefgh', '!!!!!!', 'AAAAAB']) {
    // 'AAAAAB' decodes to 4 bytes but does not re-encode to itself (non-canonical base64url)
    t.throws(() => a.sealRoute(internal, external, false, bad), /bad rtpengine id/, JSON.stringify(bad))
  }
  const tok = a.sealRoute(internal, external, false, rtpengineId({ host: '127.0.0.1', port: 1 }))
  const flipped = tok.slice(0, 20) + (tok[20] === 'A' ? 'B' : 'A') + tok.slice(21)
  t.equal(a.openRoute(flipped), 'forged')
  t.equal(new TokenCodec('other').openRoute(tok), 'forged')
})
