// Parser benchmark: sipedge vs npm SIP parsers on the same INVITE and 200 OK, each asked for the
// same fields (Call-ID, CSeq, top Via branch, From tag, To tag), plus the proxy forward step.
// Run: npm run build && node bench/parser.mjs   (re-executes itself with --expose-gc)
// --baseline DIR: also runs the sipedge contenders from another build's dist/ (e.g. an older commit's), side by side
// --only-sipedge: leaves out the npm parsers (quicker, for an A/B of two sipedge builds)
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'

if (typeof globalThis.gc !== 'function') {
  // a large young generation keeps scavenges out of the allocation-measuring loop
  const r = spawnSync(process.execPath, ['--expose-gc', '--min-semi-space-size=128', '--max-semi-space-size=128', fileURLToPath(import.meta.url),
    ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exit(r.status ?? 1)
}

const require = createRequire(import.meta.url)
const fixture = (n) => readFileSync(new URL(`./fixtures/${n}`, import.meta.url))
const INVITE = fixture('invite.sip')
const OK200 = fixture('ok200.sip')
const QUICK = process.argv.includes('--quick')
const RUNS = QUICK ? 3 : 7
const TARGET_MS = QUICK ? 100 : 300

let sink = 0 // results feed this so the JIT cannot drop the work
const use = (...xs) => { for (const x of xs) sink += x === undefined ? 1 : typeof x === 'number' ? x : x.length }

// ---- contenders: each returns { parse(buf), forward?(buf) } or throws on load
const baselineAt = process.argv.indexOf('--baseline')
const BASELINE = baselineAt > 0 ? process.argv[baselineAt + 1] : undefined
const ONLY_SIPEDGE = process.argv.includes('--only-sipedge')
const sipedgeLib = async (dist) => {
  const base = dist ? new URL(`file://${dist.replace(/\/?$/, '/')}`) : new URL('../dist/', import.meta.url)
  const lib = await import(new URL('index.js', base).href)
  return typeof lib.parseMessage === 'function' ? lib : import(new URL('sip/index.js', base).href)
}

async function loadSipedge(dist) {
  const { parseMessage } = await sipedgeLib(dist)
  return {
    parse(buf) {
      const m = parseMessage(buf)
      use(m.callId, m.cseq.seq, m.cseq.method, m.topViaBranch, m.fromTag, m.toTag)
    },
    forward(buf) {
      const m = parseMessage(buf)
      const out = m.edit()
        .prependHeader('Via', 'SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bKedge.1;rport')
        .prependHeader('Record-Route', '<sip:127.0.1.1;lr;d=Zm9vYmFy>')
        .setMaxForwards(m.maxForwards - 1)
        .toBuffer()
      use(out)
    },
  }
}

async function loadSipedgeFull(dist) {
  const { parseMessage } = await sipedgeLib(dist)
  return {
    // the same fields through the full objects (Via, NameAddr) instead of the cheap paths
    parse(buf) {
      const m = parseMessage(buf)
      use(m.callId, m.cseq.seq, m.cseq.method, m.via.branch, m.from.tag, m.to.tag)
    },
  }
}

async function loadSip() {
  const sip = require('sip')
  return {
    parse(buf) {
      const m = sip.parse(buf.toString('utf8'))
      const h = m.headers
      use(h['call-id'], h.cseq.seq, h.cseq.method, h.via[0].params.branch, h.from.params.tag, h.to.params.tag)
    },
    forward(buf) {
      const m = sip.parse(buf.toString('utf8'))
      m.headers.via.unshift({ version: '2.0', protocol: 'UDP', host: '127.0.1.1', port: 5060, params: { branch: 'z9hG4bKedge.1', rport: null } })
      m.headers['record-route'].unshift({ uri: 'sip:127.0.1.1;lr;d=Zm9vYmFy', params: {} })
      m.headers['max-forwards'] = +m.headers['max-forwards'] - 1
      use(Buffer.from(sip.stringify(m), 'utf8'))
    },
  }
}

async function loadDrachtio() {
  const { SipMessage } = require('drachtio-sip')
  return {
    parse(buf) {
      const m = new SipMessage(buf.toString('utf8'))
      const cseq = m.getParsedHeader('CSeq')
      use(m.get('Call-ID'), cseq.seq, cseq.method, m.getParsedHeader('Via')[0].params.branch,
        m.getParsedHeader('From').params.tag, m.getParsedHeader('To').params.tag)
    },
    forward(buf) {
      const m = new SipMessage(buf.toString('utf8'))
      m.headers['via'] = 'SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bKedge.1;rport,' + m.headers['via']
      m.headers['record-route'] = '<sip:127.0.1.1;lr;d=Zm9vYmFy>,' + m.headers['record-route']
      m.headers['max-forwards'] = String(+m.headers['max-forwards'] - 1)
      use(Buffer.from(m.toString(), 'utf8'))
    },
  }
}

async function loadJssip() {
  const Parser = require('jssip/lib/Parser')
  const ua = {}
  return {
    parse(buf) {
      const m = Parser.parseMessage(buf.toString('utf8'), ua)
      use(m.call_id, m.cseq, m.method, m.via_branch, m.from_tag, m.to_tag)
    },
  }
}

async function loadSipJs() {
  const { Parser } = await import('sip.js/lib/core/messages/parser.js')
  const logger = { error() {}, warn() {}, log() {}, debug() {} }
  return {
    parse(buf) {
      const m = Parser.parseMessage(buf.toString('utf8'), logger)
      use(m.callId, m.cseq, m.method, m.viaBranch, m.fromTag, m.toTag)
    },
  }
}

// ---- measurement
function timeOnce(fn, buf, iters) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < iters; i++) fn(buf)
  return Number(process.hrtime.bigint() - t0)
}

function calibrate(fn, buf) {
  // warm up (JIT): 20k calls, or half a second for the slow parsers
  const until = Date.now() + 500
  for (let i = 0; i < 20000 && (i % 64 !== 0 || Date.now() < until); i++) fn(buf)
  let iters = 1000
  while (timeOnce(fn, buf, iters) < TARGET_MS * 1e6 / 4) iters *= 2
  return iters
}

function bytesPerMessage(fn, buf, ns) {
  // heap growth over a loop that fits in the young generation (see the semi-space flags above), plus the
  // growth of ArrayBuffer memory (the output Buffers); median of 5 loops, since an ArrayBuffer freed by the
  // GC before a loop can be returned during it and hide that loop's own growth
  const n = Math.min(5000, Math.max(50, Math.round(0.5e9 / ns))) // at most ~0.5 s of work; 5000 x ~5 KB fits the young generation
  const samples = []
  for (let r = 0; r < 5; r++) {
    globalThis.gc()
    const h0 = v8.getHeapStatistics().used_heap_size
    const a0 = process.memoryUsage().arrayBuffers
    for (let i = 0; i < n; i++) fn(buf)
    const h1 = v8.getHeapStatistics().used_heap_size
    const a1 = process.memoryUsage().arrayBuffers
    samples.push(Math.max(0, (h1 - h0) + Math.max(0, a1 - a0)) / n)
  }
  return samples.sort((a, b) => a - b)[2]
}

/** Runs are interleaved across contenders so that a load spike on the machine hits all of them. */
function measureAll(fns, buf) {
  const iters = fns.map((fn) => calibrate(fn, buf))
  const rates = fns.map(() => [])
  for (let r = 0; r < RUNS; r++) {
    fns.forEach((fn, k) => rates[k].push(iters[k] / (timeOnce(fn, buf, iters[k]) / 1e9)))
  }
  return fns.map((fn, k) => {
    const sorted = rates[k].sort((a, b) => a - b)
    const rate = sorted[sorted.length >> 1]
    return { rate, ns: 1e9 / rate, bytes: bytesPerMessage(fn, buf, 1e9 / rate) }
  })
}

const contenders = [
  ['sipedge', loadSipedge],
  ['sipedge (full objects)', loadSipedgeFull],
  ['sip', loadSip],
  ['drachtio-sip', loadDrachtio],
  ['jssip', loadJssip],
  ['sip.js', loadSipJs],
]
if (ONLY_SIPEDGE) contenders.splice(2)
if (BASELINE) contenders.splice(1, 0, ['sipedge @baseline', () => loadSipedge(BASELINE)], ['sipedge (full) @baseline', () => loadSipedgeFull(BASELINE)])

const loaded = []
for (const [name, load] of contenders) {
  try {
    const c = await load()
    c.parse(INVITE) // smoke: must handle both messages
    c.parse(OK200)
    loaded.push([name, c])
  } catch (e) {
    loaded.push([name, null, e])
  }
}

const fmt = (x) => x >= 1e6 ? (x / 1e6).toFixed(2) + 'M' : x >= 1e3 ? (x / 1e3).toFixed(0) + 'k' : x.toFixed(0)
function table(title, buf, pick) {
  console.log(`\n${title}`)
  console.log('contender'.padEnd(24) + 'msgs/s'.padStart(10) + 'ns/msg'.padStart(10) + 'B/msg'.padStart(9) + '  vs sipedge')
  const runnable = []
  const lines = new Map()
  for (const [name, c, err] of loaded) {
    if (!c) { lines.set(name, `  failed to load: ${String(err?.message ?? err).split('\n')[0]}`); continue }
    const fn = pick(c)
    if (!fn) { lines.set(name, '  n/a (no serialiser for received messages)'); continue }
    try { fn(buf); runnable.push([name, fn]) } catch (e) { lines.set(name, `  failed: ${String(e?.message ?? e).split('\n')[0]}`) }
  }
  const results = measureAll(runnable.map(([, fn]) => fn), buf)
  const base = results[0]?.rate ?? 1
  runnable.forEach(([name], k) => {
    const r = results[k]
    const ratio = base / r.rate
    lines.set(name, fmt(r.rate).padStart(10) + r.ns.toFixed(0).padStart(10) + r.bytes.toFixed(0).padStart(9) +
      '  ' + (k === 0 ? '1x' : ratio >= 1 ? ratio.toFixed(1) + 'x slower' : (1 / ratio).toFixed(1) + 'x faster'))
  })
  for (const [name] of loaded) console.log(name.padEnd(24) + lines.get(name))
}

console.log(`node ${process.version}, one core; INVITE ${INVITE.length} B, 200 OK ${OK200.length} B; median of ${RUNS} runs`)
table('parse INVITE + Call-ID, CSeq, top Via branch, From tag, To tag', INVITE, (c) => c.parse)
table('parse 200 OK + the same fields', OK200, (c) => c.parse)
table('forward step: parse, add Via + Record-Route, Max-Forwards - 1, serialise', INVITE, (c) => c.forward)
if (sink === 42) console.log('')
