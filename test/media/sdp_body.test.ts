import t from 'tap'
import fc from 'fast-check'
import { extractSdp, findSdp, parseContentType, replaceSdp } from '../../src/media/sdp_body.js'
import { callerSdp } from '../helpers/media.js'

const sdp = callerSdp('127.0.1.5', 40000)
const newSdp = callerSdp('127.0.3.1', 30000)

function multipart(boundary: string, partsList: Array<[string | undefined, Buffer | string]>, preamble = ''): Buffer {
  const chunks: Buffer[] = [Buffer.from(preamble)]
  for (const [ct, content] of partsList) {
    chunks.push(Buffer.from(`--${boundary}\r\n${ct === undefined ? '' : `Content-Type: ${ct}\r\n`}\r\n`))
    chunks.push(Buffer.from(content))
    chunks.push(Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(chunks)
}

t.test('Content-Type parsing', async (t) => {
  t.same(parseContentType('application/SDP'), { mediaType: 'application/sdp', params: new Map() })
  const ct = parseContentType('Multipart/Mixed ; boundary="a b;c" ;X=1')!
  t.equal(ct.mediaType, 'multipart/mixed')
  t.equal(ct.params.get('boundary'), 'a b;c')
  t.equal(ct.params.get('x'), '1')
  t.equal(parseContentType('multipart/mixed;boundary=unique-boundary-1')!.params.get('boundary'), 'unique-boundary-1')
  for (const bad of ['', 'sdp', 'application/', 'a/b; x', 'a/b; x="unterminated', 'a/b junk', undefined]) t.equal(parseContentType(bad), undefined, String(bad))
})

t.test('application/sdp: the whole body, replaced with the new Content-Length', async (t) => {
  t.same(findSdp('application/sdp', sdp), { start: 0, end: sdp.length, multipart: false })
  const r = replaceSdp('application/sdp', sdp, newSdp)!
  t.equal(r.body, newSdp)
  t.equal(r.contentLength, newSdp.length)
  t.same(findSdp(undefined, sdp), { start: 0, end: sdp.length, multipart: false }, 'no Content-Type but v=: SDP')
})

t.test('bodies without SDP are untouched', async (t) => {
  t.equal(replaceSdp('application/sdp', Buffer.alloc(0), newSdp), undefined, 'empty body')
  t.equal(replaceSdp('application/isup', Buffer.from('\x01\x02'), newSdp), undefined)
  t.equal(replaceSdp('text/plain', Buffer.from('v=0 but text'), newSdp), undefined)
  t.equal(replaceSdp(undefined, Buffer.from('hello'), newSdp), undefined)
  t.equal(replaceSdp('application/sdp;', sdp, newSdp), undefined, 'malformed Content-Type: not guessed')
  const noSdp = multipart('b1', [['application/isup', 'xx'], ['text/plain', 'v=0']])
  t.equal(replaceSdp('multipart/mixed;boundary=b1', noSdp, newSdp), undefined, 'multipart without an SDP part')
  t.equal(replaceSdp('multipart/mixed', multipart('b1', [['application/sdp', sdp]]), newSdp), undefined, 'no boundary param')
})

t.test('multipart/mixed: the SDP part is replaced, other parts and framing kept byte for byte', async (t) => {
  const isup = Buffer.from([0x01, 0x00, 0x0d, 0x0a, 0xff, 0x2d, 0x2d])
  const body = multipart('unique-boundary-1', [['application/isup;version=itu-t92+', isup], ['application/sdp', sdp]], '')
  const ct = 'multipart/mixed;boundary=unique-boundary-1'
  const loc = findSdp(ct, body)!
  t.equal(loc.multipart, true)
  t.ok(body.subarray(loc.start, loc.end).equals(sdp), 'exactly the SDP (without the CRLF before the delimiter)')
  const r = replaceSdp(ct, body, newSdp)!
  const expected = multipart('unique-boundary-1', [['application/isup;version=itu-t92+', isup], ['application/sdp', newSdp]])
  t.ok(r.body.equals(expected), 'same framing, ISUP untouched')
  t.equal(r.contentLength, r.body.length)
  t.ok(extractSdp(ct, r.body)!.equals(newSdp), 'and the result is parsable again')
  // SDP first, quoted boundary, preamble, compact header name, transport padding after the delimiter.
  const b2 = Buffer.from(`preamble\r\n--xyz  \r\nc: application/sdp\r\n\r\n${sdp}\r\n--xyz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--xyz--`)
  t.ok(extractSdp('multipart/mixed; boundary="xyz"', b2)!.equals(sdp))
  // Nested multipart/alternative inside multipart/mixed.
  const inner = multipart('in', [['text/plain', 'x'], ['application/sdp', sdp]])
  const outer = multipart('out', [['multipart/alternative; boundary=in', inner.subarray(0, inner.length - 2)]])
  t.ok(extractSdp('multipart/mixed;boundary=out', outer)!.equals(sdp), 'nested one level')
  // A part without Content-Type is text/plain, not SDP.
  t.equal(extractSdp('multipart/mixed;boundary=b', multipart('b', [[undefined, sdp]])), undefined)
})

t.test('malformed multipart: undefined, never an exception', async (t) => {
  const ct = 'multipart/mixed;boundary=b'
  const cases = [
    '--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n', // unterminated part
    'xx--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--', // delimiter not at a line start
    '--b', '--b--', '--b\r\n', '--b\r\nContent-Type: application/sdp', '\r\n\r\n\r\n',
    '--b\r\nContent-Type: application/sdp\r\n--b--',
  ]
  for (const c of cases) t.equal(findSdp(ct, Buffer.from(c)), undefined, JSON.stringify(c))
  t.equal(findSdp(`multipart/mixed;boundary=${'x'.repeat(71)}`, Buffer.from('--x')), undefined, 'boundary over 70 chars')
  // Deep nesting is bounded.
  let body = multipart('b0', [['application/sdp', sdp]])
  for (let i = 1; i < 6; i++) body = multipart(`b${i}`, [[`multipart/mixed;boundary=b${i - 1}`, body.subarray(0, body.length - 2)]])
  t.equal(findSdp('multipart/mixed;boundary=b5', body), undefined, 'nesting beyond 3 levels is not followed')
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(ct, 'application/sdp', 'multipart/related;boundary=""', undefined), (bytes, c) => {
    const b = Buffer.from(bytes)
    const loc = findSdp(c, b)
    return loc === undefined || (loc.start >= 0 && loc.end <= b.length && loc.start <= loc.end)
  }), { numRuns: 2000 })
})
