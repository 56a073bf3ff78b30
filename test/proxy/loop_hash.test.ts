// The branch hash behind loop detection (RFC 3261 §16.6 step 8): it depends on what routes the request
// (Request-URI, Route, tags, Call-ID, CSeq number, Proxy-Require) and not on what every hop changes (Via,
// Max-Forwards) nor on the method (CANCEL shares its INVITE's branch).
import t from 'tap'
import { branchCarries, loopBranch, loopHash } from '../../src/proxy/loop.js'
import { parseMessage } from '../../src/sip/index.js'

const base = [
  'INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKa',
  'Max-Forwards: 70',
  'From: "A" <sip:a@127.0.0.2>;tag=ft1',
  'To: <sip:+15550100@127.0.0.1>',
  'Call-ID: c1@127.0.0.2',
  'CSeq: 7 INVITE',
  'Content-Length: 0',
  '',
  '',
].join('\r\n')
const hashOf = (text: string, plain?: string): number => loopHash(parseMessage(Buffer.from(text)), plain)
const h0 = hashOf(base)

t.equal(hashOf(base.replace('Max-Forwards: 70', 'Max-Forwards: 69')), h0, 'Max-Forwards does not count')
t.equal(hashOf(base.replace('Via: ', 'Via: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKx\r\nVia: ')), h0, 'an added Via does not count')
t.equal(hashOf(base.replace('From: "A" <sip:a@127.0.0.2>', 'From: <sip:a@127.0.0.1:5060>')), h0, 'a rewritten From URI does not count, its tag does')
t.equal(hashOf(base.replace('INVITE sip', 'CANCEL sip').replace('7 INVITE', '7 CANCEL')), h0, 'the method does not count')
t.not(hashOf(base.replace('sip:+15550100@127.0.0.1:5060', 'sip:+15550100@127.0.0.9:5060')), h0, 'Request-URI')
t.not(hashOf(base.replace('tag=ft1', 'tag=ft2')), h0, 'From tag')
t.not(hashOf(base.replace('To: <sip:+15550100@127.0.0.1>', 'To: <sip:+15550100@127.0.0.1>;tag=x')), h0, 'To tag')
t.not(hashOf(base.replace('c1@', 'c2@')), h0, 'Call-ID')
t.not(hashOf(base.replace('CSeq: 7', 'CSeq: 8')), h0, 'CSeq number')
t.not(hashOf(base.replace('Call-ID', 'Route: <sip:127.0.0.5;lr>\r\nCall-ID')), h0, 'Route')
t.not(hashOf(base.replace('Call-ID', 'Proxy-Require: foo\r\nCall-ID')), h0, 'Proxy-Require')
t.equal(hashOf(base.replace('c1@127.0.0.2', 'se1.masked'), 'c1@127.0.0.2'), h0, 'a masked Call-ID hashes as the one it stands for')
t.equal(hashOf(base.replace('From: "A" <sip:a@127.0.0.2>;tag=ft1', 'From: sip:a@127.0.0.2 ; TAG = ft1')), h0, 'tag found in addr-spec form, whitespace around ; and =')

const b = loopBranch(h0)
t.ok(b.startsWith('z9hG4bK'), 'an RFC 3261 branch')
t.ok(branchCarries(b, h0.toString(36)), 'carries its hash')
t.notOk(branchCarries(b, (h0 ^ 1).toString(36)), 'not another')
t.notOk(branchCarries('z9hG4bK' + h0.toString(36), h0.toString(36)), 'a bare hash with no unique part is not ours')
t.not(loopBranch(h0), b, 'unique per attempt')
