// Shared assertions for the scenario-pair tests (not a test file itself: tap skips it, no tests).
import type { Test } from 'tap';
import type { SippResult } from '../helpers/sipp.js';
import { describe } from '../helpers/sipp.js';

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
