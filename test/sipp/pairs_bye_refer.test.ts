// BYE from the callee and REFER/NOTIFY: scenario pairs straight against each other (no proxy) over UDP and TCP.
import t from 'tap';
import { testPairs } from './check.js';

const pairs = [
  { uac: 'uac_callee_bye', uas: 'uas_bye', uasDurationMs: 20 },
  { uac: 'uac_refer', uas: 'uas_refer', uacDurationMs: 20 },
] as const;

testPairs(t, pairs, 30);
