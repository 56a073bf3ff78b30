// The inbound-trunk source check of every new public request (src/proxy/inbound_trunks.ts): integer masks for
// IPv4 entries, side by side with node:net BlockList.check (what the ACLs use). Medians of 9 runs of 200k calls.
// Run after `npm run build`: node bench/inbound_trunks.mjs
import { InboundTrunks } from '../dist/proxy/inbound_trunks.js'
import { cidrList, inList } from '../dist/proxy/addressing.js'
const specs = [{ cidr: '198.51.100.0/28' }, { set: 'b', cidr: '203.0.113.9' }, { cidr: '2001:db8::/32' }]
const tr = new InboundTrunks(specs)
const bl = cidrList(specs.map((s) => s.cidr))
function time(fn, n) { const runs = []; for (let r = 0; r < 9; r++) { const t0 = process.hrtime.bigint(); for (let i = 0; i < n; i++) fn(i); runs.push(Number(process.hrtime.bigint() - t0) / n) } runs.sort((a, b) => a - b); return runs[4] }
let sink = 0
const a = time(() => { if (tr.match('192.0.2.77') === undefined) sink++ }, 200000)
const b = time(() => { if (!inList(bl, '192.0.2.77')) sink++ }, 200000)
const c = time(() => { if (tr.match('203.0.113.9') === 'b') sink++ }, 200000)
const d = time(() => { if (inList(bl, '203.0.113.9')) sink++ }, 200000)
console.log(`stranger: InboundTrunks.match ${a.toFixed(0)} ns, one BlockList.check ${b.toFixed(0)} ns, ratio ${(b / a).toFixed(1)}`)
console.log(`trunk set=b: InboundTrunks.match ${c.toFixed(0)} ns, one BlockList.check ${d.toFixed(0)} ns, ratio ${(d / c).toFixed(1)}`)
if (sink === 0) console.log("(nothing matched)")
