// Shared assertions for the scenario-pair tests (not a test file itself: tap skips it, no tests).
import type { Test } from 'tap';
import type { PairOptions, SippResult } from '../helpers/sipp.js';
import { describe, runPair, sippAvailable } from '../helpers/sipp.js';

/** Both sides completed exactly `calls` calls, none failed, nothing was retransmitted or left over. */
export function checkPair(t: Test, r: { uac: SippResult; uas: SippResult }, calls: number): void {
  let ok = true;
  for (const [side, res] of [['uac', r.uac], ['uas', r.uas]] as const) {
    ok = t.equal(res.successful, calls, `${side}: ${calls} successful calls`) && ok;
    ok = t.equal(res.failed, 0, `${side}: no failed call`) && ok;
    ok = t.equal(res.retransmissions, 0, `${side}: no retransmission on loopback`) && ok;
    ok = t.notOk(res.timedOut, `${side}: SIPp ended by itself`) && ok;
  }
  ok = t.equal(r.uac.exitCode, 0, 'uac exit code 0 (all calls successful)') && ok;
  ok = t.equal(r.uas.exitCode, 0, 'uas exit code 0 after SIGUSR1') && ok;
  if (!ok) t.comment(`uac: ${describe(r.uac)}\nuas: ${describe(r.uas)}`);
}

/**
 * One test per pair and transport (UAS on 127.0.1.<firstHost>, <firstHost+1>, ...): every call completes on
 * both sides and the caller logged the UAS identity (X-Backend) for each of them.
 */
export function testPairs(t: Test, pairs: ReadonlyArray<Pick<PairOptions, 'uac' | 'uas' | 'uacDurationMs' | 'uasDurationMs'>>, firstHost: number): void {
  if (!sippAvailable()) {
    t.fail('sipp is not installed (apt-get install sip-tester)');
    return;
  }
  let host = firstHost;
  for (const p of pairs) {
    for (const transport of ['udp', 'tcp'] as const) {
      const uasIp = `127.0.1.${host++}`;
      t.test(`${p.uac} -> ${p.uas} over ${transport}`, async (t) => {
        const r = await runPair({ ...p, transport, uasIp, t });
        checkPair(t, r, 20);
        t.equal(r.uac.backends.length, 20, 'X-Backend logged for every call');
        t.ok(r.uac.backends.every((b) => b === r.uasId), `X-Backend is ${r.uasId}`);
      });
    }
  }
}
