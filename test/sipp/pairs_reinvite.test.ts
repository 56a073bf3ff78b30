// re-INVITE by the caller and by the callee: scenario pairs straight against each other (no proxy) over UDP and TCP.
import t from 'tap';
import { testPairs } from './check.js';

const pairs = [
  { uac: 'uac_reinvite', uas: 'uas_reinvite', uacDurationMs: 20 },
  { uac: 'uac_reinvite_callee', uas: 'uas_reinvite_callee', uasDurationMs: 20, uacDurationMs: 10 },
] as const;

testPairs(t, pairs, 10);
