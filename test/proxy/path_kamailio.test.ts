// A second opinion on the edge's Path entry: Kamailio's registrar (registrar + path modules) behind the edge
// stores the Path of a phone's REGISTER, and when a call for that user reaches Kamailio, lookup("location")
// routes it through the Path: the edge takes it to the phone's NAT address, and the call works both ways.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { freePort, waitFor } from '../helpers/net.js'
import { spawnTracked } from '../helpers/proc.js'
import { answer } from '../helpers/scripted.js'
import { rawUdp } from '../helpers/udp.js'

const CFG = join(import.meta.dirname, '../sipp/path/kamailio-registrar.cfg')
const EDGE = '127.0.13.1'
const KAM = '127.0.13.61'
const PHONE = '127.0.13.5'

t.test('Kamailio as registrar: the Path it stored brings its call to the phone behind NAT', async (t) => {
  const kport = await freePort(KAM)
  const dir = mkdtempSync(join(tmpdir(), 'sipedge-kam-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const kam = spawnTracked('kamailio', ['-DD', '-E', '-f', CFG, '-l', `udp:${KAM}:${kport}`, '-n', '1', '-m', '64', '-M', '8', '-Y', dir, '-P', join(dir, 'pid'), '-w', dir], { t })
  const caller = await rawUdp(t, '127.0.13.62')
  // Ready once it answers (405 to OPTIONS, from the script).
  await waitFor(async () => {
    if (kam.exitCode() !== undefined) throw new Error(`kamailio exited: ${kam.output().stderr.slice(-600)}`)
    caller.send(['OPTIONS sip:' + KAM + ' SIP/2.0', `Via: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK-opt${Date.now()}`, 'Max-Forwards: 70',
      `From: <sip:probe@${caller.address}>;tag=p`, `To: <sip:${KAM}>`, `Call-ID: opt${Date.now()}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'), KAM, kport)
    await new Promise((r) => setTimeout(r, 200))
    return caller.received.some((m) => m.cseq.method === 'OPTIONS')
  }, { timeoutMs: 8000, what: 'kamailio answers' })

  const port = await freePort(EDGE)
  const e = await startEdge(t, EDGE, { backends: [`sip:${KAM}:${kport}`] }, port)
  const phone = await rawUdp(t, PHONE)
  phone.send([`REGISTER sip:${e.target} SIP/2.0`, `Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK-kreg;rport`, 'Max-Forwards: 70',
    `From: <sip:alice@${e.target}>;tag=kr`, `To: <sip:alice@${e.target}>`, 'Call-ID: kreg', 'CSeq: 1 REGISTER',
    'Contact: <sip:alice@192.168.1.20:5062>', 'Expires: 60', 'Content-Length: 0', '', ''].join('\r\n'), EDGE, e.port)
  const ok = await phone.next((m) => m.cseq.method === 'REGISTER', 3000)
  t.equal(ok.status, 200, 'Kamailio accepted the REGISTER (with the Supported: path the edge added, path_mode 1)')
  t.equal(ok.getHeader('Path'), undefined, 'the Path Kamailio echoed does not reach the phone')
  t.match(ok.getHeader('Contact'), 'alice@192.168.1.20:5062', 'the binding is the Contact the phone wrote')

  // Someone inside calls alice at the registrar.
  caller.send([`INVITE sip:alice@${e.target} SIP/2.0`, `Via: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK-kinv;rport`, 'Max-Forwards: 70',
    `From: <sip:queue@${caller.address}>;tag=kc`, `To: <sip:alice@${e.target}>`, 'Call-ID: kcall', 'CSeq: 1 INVITE',
    `Contact: <sip:queue@${caller.address}:${caller.port}>`, 'Content-Length: 0', '', ''].join('\r\n'), KAM, kport)
  const inv = await phone.next((m) => m.method === 'INVITE', 3000)
  t.equal(inv.requestUri, 'sip:alice@192.168.1.20:5062', "Kamailio's lookup gave the Contact as Request-URI; the edge sent it to the phone's NAT address")
  t.equal(inv.getHeader('Route'), undefined, 'the Path entry Kamailio used as Route is consumed')
  t.notMatch(inv.getHeader('Via'), KAM, "Kamailio's Via is hidden")
  answer(phone, inv, 200, { tag: 'ph1' })
  const ans = await caller.next((m) => m.cseq.method === 'INVITE' && m.status === 200, 3000)
  t.equal(ans.status, 200, "the phone's 200 OK reached the caller through the edge and Kamailio")

  // The phone hangs up: its BYE follows the edge's Record-Route back in.
  phone.send([`BYE ${inv.getHeader('Contact')!.replace(/^<|>.*$/g, '')} SIP/2.0`, `Via: SIP/2.0/UDP ${PHONE}:${phone.port};branch=z9hG4bK-kbye;rport`, 'Max-Forwards: 70',
    `Route: ${inv.getHeader('Record-Route')}`, `From: ${inv.getHeader('To')};tag=ph1`, `To: ${inv.getHeader('From')}`, `Call-ID: ${inv.callId}`,
    'CSeq: 1 BYE', 'Content-Length: 0', '', ''].join('\r\n'), EDGE, e.port)
  const bye = await caller.next((m) => m.method === 'BYE', 3000)
  t.equal(bye.callId, 'kcall', 'the BYE reaches the caller with its own Call-ID')
  answer(caller, bye, 200)
  t.equal((await phone.next((m) => m.cseq.method === 'BYE', 3000)).status, 200, 'and its 200 comes back to the phone')
})
