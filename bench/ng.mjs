#!/usr/bin/env node
// NG codec cost per command (src/media/bencode.ts): encode of an offer as the edge builds it, decode of
// rtpengine's offer reply and of a delete reply (full, and shallow as the NG client decodes it).
// Prints µs and bytes per command, median of 7 runs. Run after `npm run build`; an argument names another
// build of bencode.js to compare (e.g. one compiled from an older commit), run in the same minutes.
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'

const { encode, decode } = await import(process.argv[2] ? pathToFileURL(process.argv[2]).href : '../dist/media/bencode.js')

const sdp = Buffer.from('v=0\r\no=- 3711 3711 IN IP4 172.18.0.5\r\ns=Asterisk\r\nc=IN IP4 172.18.0.5\r\nt=0 0\r\n'
  + 'm=audio 10022 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n'
  + 'a=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n', 'latin1')
const offerArgs = () => ({
  command: 'offer', 'call-id': '3a8c1f0e-9a7b-4c2d-8e11-5b6f7a8c9d0e@10.0.0.1', 'from-tag': 'as5f1c2d3e', 'to-tag': undefined,
  'via-branch': undefined, sdp, direction: ['external', 'internal'], replace: ['origin', 'session-connection'], ICE: 'remove', flags: undefined,
})
const offerReply = encode({ result: 'ok', sdp: sdp.toString('latin1').replaceAll('172.18.0.5', '127.0.2.1') }, 'abcdef12 ')
// A delete reply as rtpengine 10.5 sends it: call and per-tag statistics, one stream per side.
const stream = (port) => ({
  'local port': port, endpoint: { family: 'IPv4', address: '127.0.0.1', port: port + 1000 },
  'advertised endpoint': { family: 'IPv4', address: '127.0.0.1', port: port + 1000 }, 'last packet': 1733459000, flags: ['RTP', 'filled'],
  SSRC: 0, stats: { packets: 0, bytes: 0, errors: 0 },
})
const tag = (t) => ({ tag: t, created: 1733459000, 'in dialogue with': 'x', medias: [{ index: 1, type: 'audio', protocol: 'RTP/AVP', streams: [stream(40000), stream(40001)], flags: ['initialized', 'send', 'recv'] }] })
const deleteReply = encode({
  created: 1733459000, 'created_us': 123456, 'last signal': 1733459001, 'last redis update': 0, SSRC: {},
  tags: { as5f1c2d3e: tag('as5f1c2d3e'), b7e8f9a0: tag('b7e8f9a0') },
  totals: { RTP: { packets: 0, bytes: 0, errors: 0 }, RTCP: { packets: 0, bytes: 0, errors: 0 } }, result: 'ok',
}, 'abcdef13 ')

function measure(name, n, fn) {
  const runs = []
  let bytes = 0
  for (let r = 0; r < 7; r++) {
    globalThis.gc?.()
    const h0 = process.memoryUsage().heapUsed
    const t0 = performance.now()
    for (let i = 0; i < n; i++) fn()
    runs.push(((performance.now() - t0) * 1000) / n)
    bytes = Math.max(0, (process.memoryUsage().heapUsed - h0) / n)
  }
  runs.sort((a, b) => a - b)
  process.stdout.write(`${name.padEnd(34)} ${runs[3].toFixed(2).padStart(6)} µs   ~${Math.round(bytes)} B heap/op\n`)
}

process.stdout.write(`offer ${encode(offerArgs(), 'abcdef12 ').length} B, offer reply ${offerReply.length} B, delete reply ${deleteReply.length} B\n`)
measure('encode offer', 20000, () => encode(offerArgs(), 'abcdef12 '))
measure('decode offer reply', 20000, () => decode(offerReply, { offset: 9 }))
measure('decode delete reply (full)', 20000, () => decode(deleteReply, { offset: 9 }))
measure('decode delete reply (shallow)', 20000, () => decode(deleteReply, { offset: 9, shallow: true }))
