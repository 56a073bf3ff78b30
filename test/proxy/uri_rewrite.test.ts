// The Refer-To / Referred-By / Replaces / 3xx Contact rewrites on their own: what they produce, and that odd
// or broken values are left alone or left out, never a throw (they run on messages from anyone).
import t from 'tap'
import { parseMessage } from '../../src/sip/index.js'
import type { Listener } from '../../src/transport/types.js'
import { redirectContacts, rewriteTransferHeaders, type RewriteContext } from '../../src/proxy/uri_rewrite.js'

const listener = { id: 1, spec: { proto: 'udp', side: 'public' }, hostport: '127.0.0.1:5060', port: 5060 } as unknown as Listener
const ctx: RewriteContext = {
  isInternal: (h) => h.startsWith('127.0.9.'),
  isOwn: (h, p) => h === '127.0.0.1' && (p ?? 5060) === 5060,
  sealContact: (uri) => 'T' + Buffer.from(uri).toString('base64url'),
  openContact: (tok) => (tok.startsWith('T') ? Buffer.from(tok.slice(1), 'base64url').toString() : undefined),
  crossCallId: (id, inward) => (inward ? (id.startsWith('se1.') ? id.slice(4) : undefined) : id.startsWith('out-') ? 'se1.' + id : undefined),
}

function run(lines: string[], outward: boolean): string {
  const text = ['REFER sip:x@127.0.0.5 SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.5;branch=z9hG4bKx', 'From: <sip:a@127.0.0.5>;tag=1', 'To: <sip:b@127.0.0.1>;tag=2', 'Call-ID: c', 'CSeq: 1 REFER', ...lines, 'Content-Length: 0', '', ''].join('\r\n')
  const msg = parseMessage(Buffer.from(text))
  const ed = msg.edit()
  rewriteTransferHeaders(msg, ed, outward, listener, ctx)
  const out = parseMessage(ed.toBuffer())
  return lines.map((l) => out.getHeader(l.slice(0, l.indexOf(':'))) ?? '(gone)').join(' | ')
}

t.equal(run(['Refer-To: <sip:200@127.0.9.7:5060;transport=udp>'], true), `<sip:200@127.0.0.1:5060;ct=T${Buffer.from('sip:200@127.0.9.7:5060;transport=udp').toString('base64url')}>`, 'internal target aliased')
t.equal(run(['Refer-To: <sip:200@203.0.113.9>'], true), '<sip:200@203.0.113.9>', 'external target kept')
t.equal(run(['r: sip:200@127.0.9.7'], true).startsWith('sip:200@127.0.0.1:5060;ct='), true, 'compact form, addr-spec')
t.equal(run(['Refer-To: <sip:200@127.0.9.7?Replaces=out-1%40h%3Bto-tag%3Da>'], true).endsWith('?Replaces=se1.out-1%40h%3Bto-tag%3Da>'), true, 'Replaces in the URI masked, escaped')
t.equal(run(['Refer-To: <sip:200@127.0.0.1;ct=T' + Buffer.from('sip:200@127.0.9.7').toString('base64url') + '?Replaces=se1.x%3Bto-tag%3Da>'], false), '<sip:200@127.0.9.7?Replaces=x%3Bto-tag%3Da>', 'inward: our alias opened, Call-ID restored')
t.equal(run(['Refer-To: <sip:200@127.0.0.1;ct=forged>'], false), '<sip:200@127.0.0.1;ct=forged>', 'a token that does not open: left as is')
t.equal(run(['Referred-By: "Ast" <sip:100@127.0.9.7:5060>;cid=x'], true), '"Ast" <sip:100@127.0.0.1:5060>;cid=x', 'Referred-By names the edge')
t.equal(run(['Replaces: se1.abc ; to-tag=1;from-tag=2'], false), 'abc ; to-tag=1;from-tag=2', 'Replaces header restored')
t.equal(run(['Replaces: out-9;to-tag=1'], true), 'se1.out-9;to-tag=1', 'Replaces header masked going out')
for (const bad of ['Refer-To: <sip:>', 'Refer-To: <', 'Refer-To: nonsense', 'Refer-To: <sip:200@127.0.9.7?Replaces=>', 'Replaces: ', 'Replaces: ;to-tag=1', 'Referred-By: <sip:@@>']) {
  t.doesNotThrow(() => run([bad], true), `outward: ${bad}`)
  t.doesNotThrow(() => run([bad], false), `inward: ${bad}`)
}

function redirect(contact: string): string {
  const text = ['SIP/2.0 302 Moved', 'Via: SIP/2.0/UDP 127.0.0.5;branch=z9hG4bKx', 'From: <sip:a@127.0.0.5>;tag=1', 'To: <sip:b@127.0.0.1>;tag=2', 'Call-ID: c', 'CSeq: 1 INVITE', `Contact: ${contact}`, 'Content-Length: 0', '', ''].join('\r\n')
  const msg = parseMessage(Buffer.from(text))
  const ed = msg.edit()
  redirectContacts(msg, ed, listener, ctx)
  return parseMessage(ed.toBuffer()).getHeader('Contact') ?? '(gone)'
}
t.equal(redirect('<sip:1@203.0.113.1>;q=0.5, <sip:2@203.0.113.2>'), '<sip:1@203.0.113.1>;q=0.5, <sip:2@203.0.113.2>', 'only external targets: untouched')
t.match(redirect('"VM" <sip:2@127.0.9.7>;q=0.1;expires=60'), /^"VM" <sip:2@127\.0\.0\.1:5060;ct=T[\w-]+>;q=0\.1;expires=60$/, 'display name and params kept')
t.equal(redirect('<sip:1@203.0.113.1>, <sip:2@127.0.9.7:99999>'), '<sip:1@203.0.113.1>', 'an unparsable alternative is left out')
t.equal(redirect('<sip:2@127.0.9.7:99999>'), '(gone)', 'and with nothing left, no Contact')
