// The process and network helpers that every end-to-end test relies on.
import t from 'tap';
import { freePort, freeTcpPort, freeUdpPort, waitFor } from '../helpers/net.js';
import { spawnTracked, waitForLine } from '../helpers/proc.js';

t.test('free ports are numbers above 1023', async (t) => {
  for (const p of [await freeUdpPort('127.0.1.50'), await freeTcpPort('127.0.1.50'), await freePort('127.0.1.50')]) {
    t.ok(p > 1023 && p < 65536, `port ${p}`);
  }
});

t.test('waitFor resolves with the value and rejects after the timeout', async (t) => {
  let n = 0;
  t.equal(await waitFor(() => (++n >= 3 ? 'yes' : ''), { intervalMs: 5 }), 'yes');
  await t.rejects(waitFor(() => false, { timeoutMs: 50, intervalMs: 10, what: 'never' }), /never timed out/);
});

t.test('spawnTracked + waitForLine; the child is killed by PID at stop', async (t) => {
  const c = spawnTracked(process.execPath, ['-e', 'console.log("ready 42"); setInterval(() => {}, 1000)'], { t });
  const m = await waitForLine(c, /ready (\d+)/, 5000);
  t.equal(m[1], '42');
  const code = await c.stop(500);
  t.equal(code, 128 + 15, 'ended by SIGTERM');
  t.throws(() => process.kill(c.pid, 0), 'pid is gone');
  await t.rejects(waitForLine(spawnTracked(process.execPath, ['-e', '0'], { t }), /x/, 2000), /exited/);
});
