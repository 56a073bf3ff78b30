// Scenario pairs straight against each other (no proxy) over UDP and TCP: each pair must complete
// every call, and the counts come from SIPp's statistics file.
import t from 'tap';
import { runPair, sippAvailable } from '../helpers/sipp.js';
import { checkPair } from './check.js';

if (!sippAvailable()) {
  t.fail('sipp is not installed (apt-get install sip-tester)');
} else {
  for (const transport of ['udp', 'tcp'] as const) {
    t.test(`uac -> uas over ${transport}`, async (t) => {
      const r = await runPair({ uac: 'uac', uas: 'uas', transport, uasIp: transport === 'udp' ? '127.0.1.2' : '127.0.1.3', uacDurationMs: 20, t });
      checkPair(t, r, 20);
      t.equal(r.uac.backends.length, 20, 'every 200 carried X-Backend');
      t.ok(r.uac.backends.every((b) => b === r.uasId), `X-Backend is the UAS identity ${r.uasId}`);
      t.ok((r.uac.responseTimeMs?.count ?? 0) >= 20, 'one response time per call (-trace_rtt)');
      t.ok(r.uac.responseTimeMs?.p50 !== undefined && r.uac.responseTimeMs.p50 < 500, `p50 ${r.uac.responseTimeMs?.p50} ms`);
      t.match(r.uac.messages ?? '', /messages\.log$/, 'message trace kept for debugging');
    });
    t.test(`uac_options -> uas_options over ${transport}`, async (t) => {
      const r = await runPair({ uac: 'uac_options', uas: 'uas_options', transport, uasIp: transport === 'udp' ? '127.0.1.4' : '127.0.1.5', t });
      checkPair(t, r, 20);
      t.equal(r.uac.logs.filter((l) => l.startsWith('options_status=200 ')).length, 20, "options_status=200 logged per call");
    });
  }
}
