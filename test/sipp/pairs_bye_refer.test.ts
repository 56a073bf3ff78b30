// BYE from the callee and REFER/NOTIFY: scenario pairs straight against each other (no proxy) over UDP and TCP.
import t from 'tap';
import { runPair, sippAvailable } from '../helpers/sipp.js';
import { checkPair } from './check.js';

const pairs = [
  { uac: 'uac_callee_bye', uas: 'uas_bye', uasDurationMs: 20 },
  { uac: 'uac_refer', uas: 'uas_refer', uacDurationMs: 20 },
] as const;

if (!sippAvailable()) {
  t.fail('sipp is not installed (apt-get install sip-tester)');
} else {
  let host = 30;
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
