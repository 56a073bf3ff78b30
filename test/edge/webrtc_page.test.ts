// The example softphone on the admin server (adminWebrtcPage): off by default, served without the admin
// token (a browser cannot send it for a page load), SIP.js's modules under <path>sip.js/, nothing else.
import { request } from 'node:http'
import t from 'tap'
import { startEdge } from '../helpers/edge.js'
import { freeTcpPort } from '../helpers/net.js'

const HOST = '127.0.14.50'

async function get(url: string): Promise<{ status: number; type: string | null; body: string; location: string | null }> {
  const r = await fetch(url, { redirect: 'manual' })
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text(), location: r.headers.get('location') }
}

function rawGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: 'GET' }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('off by default: no page on the admin server', async (t) => {
  const admin = await freeTcpPort(HOST)
  await startEdge(t, HOST, { admin: `${HOST}:${admin}`, adminToken: 'admin-token-123' })
  t.equal((await get(`http://${HOST}:${admin}/phone/`)).status, 401, 'an unknown path is an API path: token required')
})

t.test('adminWebrtcPage serves the page, its script and SIP.js; the API keeps its token; no way out of the two directories', async (t) => {
  const admin = await freeTcpPort(HOST)
  await startEdge(t, HOST, { admin: `${HOST}:${admin}`, adminToken: 'admin-token-123', adminWebrtcPage: '/phone' })
  const base = `http://${HOST}:${admin}`
  const redirect = await get(`${base}/phone`)
  t.equal(redirect.status, 301)
  t.equal(redirect.location, '/phone/', 'the path gets its slash (the page imports ./phone.js)')
  const page = await get(`${base}/phone/`)
  t.equal(page.status, 200)
  t.match(page.type, /^text\/html/)
  t.match(page.body, /"sip\.js": "\.\/sip\.js\/index\.js"/, 'the import map points at the served SIP.js')
  const script = await get(`${base}/phone/phone.js`)
  t.match(script.type, /^text\/javascript/)
  t.match(script.body, /iceServers: \[\]/, 'no STUN server configured')
  const lib = await get(`${base}/phone/sip.js/index.js`)
  t.equal(lib.status, 200)
  t.match(lib.body, /export \* from "\.\/api\/index\.js"/)
  // Sent as written (fetch would normalise the dots away): nothing outside the page and SIP.js directories.
  for (const bad of ['/phone/../../package.json', '/phone/sip.js/../package.json', '/phone/sip.js/../../../package.json', '/phone/%2e%2e/%2e%2e/package.json', '/phone/README.md']) {
    const r = await rawGet(HOST, admin, bad)
    // Dot segments are resolved first (URL parsing), so an escape lands on an API path: 401 or 404, never a file.
    t.ok(r.status === 404 || r.status === 401, `${bad}: ${r.status}`)
    t.notMatch(r.body, /"name"/, `${bad}: no file content`)
  }
  t.equal((await get(`${base}/backends`)).status, 401, 'the API still wants the token')
})
