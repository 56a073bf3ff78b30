// The floor under the edge: what Node alone costs per datagram relayed (receive one, send it on, nothing
// else), at the datagram rates the edge sees. At 500 calls/s the edge receives and sends ~7,000 datagrams a
// second each way, one per event-loop wake-up; this says how much of its CPU per call that part is.
//   node bench/floor.mjs [--rates 3500,7000,14000,28000] [--seconds 4]      (run it in ./test/netns.sh)
import { fork } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

if (process.argv[2] === '--relay') {
  // The relay process: every datagram on 127.0.0.1:7001 goes on to 127.0.0.1:7002.
  const s = createSocket('udp4')
  let n = 0
  let c0 = process.cpuUsage()
  s.on('message', (b) => {
    n++
    s.send(b, 7002, '127.0.0.1')
  })
  s.bind(7001, '127.0.0.1', () => process.send('ready'))
  process.on('message', (m) => {
    if (m === 'start') {
      n = 0
      c0 = process.cpuUsage()
    } else {
      const c = process.cpuUsage(c0)
      process.send({ n, us: (c.user + c.system) / n })
    }
  })
} else {
  const { values: o } = parseArgs({ options: { rates: { type: 'string', default: '3500,7000,14000,28000' }, seconds: { type: 'string', default: '4' } } })
  const relay = fork(fileURLToPath(import.meta.url), ['--relay'])
  await new Promise((r) => relay.once('message', r))
  const sink = createSocket('udp4')
  sink.on('message', () => {})
  await new Promise((r) => sink.bind(7002, '127.0.0.1', r))
  const tx = createSocket('udp4')
  const msg = Buffer.alloc(600, 0x41) // about an INVITE's size
  console.log('Node alone, one datagram received and sent on per wake-up (CPU of the relay process)\n')
  console.log('datagrams/s   relayed   µs CPU per datagram')
  for (const rate of o.rates.split(',').map(Number)) {
    relay.send('start')
    const t0 = performance.now()
    const end = t0 + Number(o.seconds) * 1000
    let sent = 0
    // One datagram per turn of this loop when one is due: they reach the relay one by one, as SIPp's do.
    await new Promise((resolve) => {
      const turn = () => {
        const now = performance.now()
        if (sent < Math.floor(((now - t0) * rate) / 1000)) {
          tx.send(msg, 7001, '127.0.0.1')
          sent++
        }
        if (now < end) setImmediate(turn)
        else resolve()
      }
      turn()
    })
    await new Promise((r) => setTimeout(r, 100))
    relay.send('stop')
    const r = await new Promise((res) => relay.once('message', res))
    console.log(`${String(rate).padStart(12)}  ${String(r.n).padStart(8)}  ${r.us.toFixed(1).padStart(10)}`)
  }
  relay.kill()
  tx.close()
  sink.close()
}
