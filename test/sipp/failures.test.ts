// Failed calls must be counted, not hidden: the UAC against the 503 UAS, a stat-file parser check,
// and the hard bounds (a UAC aimed at nothing ends on its own; a stuck UAS is stopped).
import t from 'tap';
import { parseStatCsv, rttPercentiles, runUac, sippAvailable, startUas } from '../helpers/sipp.js';
import { freeUdpPort } from '../helpers/net.js';

t.test('parseStatCsv reads the (C) counters of the last row', async (t) => {
  const csv = 'StartTime;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(C);Retransmissions(C);ResponseTime1(C);\n' +
    '2026-01-01\t00:00:00;0;1;1;0;0;00:00:00:001000;\n' +
    '2026-01-01\t00:00:01;0;4;5;2;3;00:00:00:002000;\n';
  t.same(parseStatCsv(csv), { SuccessfulCall: 5, FailedCall: 2, Retransmissions: 3 });
  t.same(parseStatCsv(''), {});
  t.same(rttPercentiles('Date_ms;response_time_ms;rtd_no\n1;5;1\n2;1;1\n3;9;1\n'), { p50: 5, p99: 9, max: 9, count: 3 });
});

if (!sippAvailable()) {
  t.fail('sipp is not installed (apt-get install sip-tester)');
} else {
  for (const transport of ['udp', 'tcp'] as const) {
    t.test(`uac against uas_503 over ${transport}: every call counted as failed`, async (t) => {
      const uas = await startUas({ scenario: 'uas_503', ip: transport === 'udp' ? '127.0.1.40' : '127.0.1.41', transport, t });
      const uac = await runUac({ scenario: 'uac', target: uas.id, transport, calls: 20, rate: 20, timeoutS: 15, t });
      const srv = await uas.stop();
      t.equal(uac.successful, 0, 'no successful call');
      t.equal(uac.failed, 20, 'FailedCall(C) = 20');
      t.equal(uac.counters.FailedUnexpectedMessage, 20, 'failed on the unexpected 503');
      t.equal(uac.exitCode, 1, 'exit code 1: at least one call failed');
      t.equal(srv.successful, 20, 'the 503 side completed its 20 calls (ACK absorbed)');
      t.notOk(uac.timedOut);
    });
  }

  t.test('uac aimed at a silent port fails its calls within the bounds', async (t) => {
    const port = await freeUdpPort('127.0.1.42');
    const started = Date.now();
    const uac = await runUac({ scenario: 'uac', target: `127.0.1.42:${port}`, calls: 2, rate: 10, recvTimeoutMs: 600, timeoutS: 10, t,
      extra: ['-max_invite_retrans', '1'] });
    t.equal(uac.successful, 0);
    t.equal(uac.failed, 2, 'both calls failed');
    t.ok(Date.now() - started < 8000, `bounded (${Date.now() - started} ms)`);
  });

  t.test('a UAS with a call still open is stopped within the bound', async (t) => {
    const uas = await startUas({ scenario: 'uas', ip: '127.0.1.43', t });
    // The caller holds the call (pause) longer than the UAS is given to finish it.
    const caller = runUac({ scenario: 'uac', target: uas.id, calls: 1, rate: 10, durationMs: 1500, recvTimeoutMs: 500, timeoutS: 5, t });
    await new Promise((r) => setTimeout(r, 300));
    t.ok(uas.running(), 'running with one open call');
    const started = Date.now();
    const res = await uas.stop(400);
    t.notOk(uas.running(), 'stopped');
    t.ok(Date.now() - started < 4000, `stop bounded (${Date.now() - started} ms)`);
    t.ok(res.timedOut, 'reported as forced (SIGUSR1 alone did not end it)');
    const uac = await caller;
    t.equal(uac.failed, 1, 'the caller saw its BYE go unanswered: counted as failed');
  });
}
