// examples/asterisk-sidecar/entrypoint.sh as a container would run it, with a stand-in `asterisk` on the PATH
// and a real etcd: a SIGTERM to the entrypoint must reach the registrant (the binary, not npx), which marks the
// backend draining and revokes its lease; the entrypoint then stops Asterisk and exits.
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Etcd3 } from 'etcd3'
import t from 'tap'
import { CLI } from '../helpers/cli_edge.js'
import { startEtcd, waitFor } from '../helpers/etcd.js'
import { spawnTracked } from '../helpers/proc.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

t.test('the sidecar entrypoint delivers SIGTERM to the registrant: draining, lease revoked, exit', async (t) => {
  const etcd = await startEtcd()
  t.teardown(() => etcd.cleanup())
  const bin = mkdtempSync(join(tmpdir(), 'sipedge-sidecar-'))
  t.teardown(() => rmSync(bin, { recursive: true, force: true }))
  // The image has `sipedge` on the PATH (npm install -g links it to dist/edge/cli.js) and Asterisk.
  symlinkSync(CLI, join(bin, 'sipedge'))
  writeFileSync(
    join(bin, 'asterisk'),
    `#!/bin/sh
case "$*" in
  -f*) echo $$ > "${bin}/asterisk.pid"; exec sleep 600 ;;
  *"core show version"*) echo "Asterisk stand-in"; exit 0 ;;
  *"core show calls count"*) echo "0 active calls"; exit 0 ;;
  *"core stop gracefully"*) kill "$(cat "${bin}/asterisk.pid")"; exit 0 ;;
esac
exit 1
`,
  )
  chmodSync(join(bin, 'asterisk'), 0o755)
  const entry = spawnTracked('/bin/sh', [join(ROOT, 'examples/asterisk-sidecar/entrypoint.sh')], {
    t,
    env: {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      SIPEDGE_ETCD: etcd.endpoint,
      SIPEDGE_IP: '127.0.14.7',
      SIPEDGE_TTL: '30', // long: the key must go because of the revoke, not because of an expiry
    },
  })
  const client = new Etcd3({ hosts: etcd.endpoint })
  t.teardown(() => client.close())
  const key = '/sipedge/backends/default/127.0.14.7:5060'
  const registered = await waitFor('registered', () => client.get(key).string(), 15_000)
  t.match(JSON.parse(registered), { uri: 'sip:127.0.14.7:5060', state: 'active' })

  entry.kill('SIGTERM')
  const code = await Promise.race([entry.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000))])
  t.equal(code, 0, `the entrypoint exits after the registrant drained (${entry.output().stderr.slice(-300)})`)
  t.equal(await client.get(key).string(), null, 'key gone: lease revoked by the registrant, not expired')
  const leases = (await client.leaseClient.leaseLeases({})).leases.length
  t.equal(leases, 0, 'no lease left alive')
})
