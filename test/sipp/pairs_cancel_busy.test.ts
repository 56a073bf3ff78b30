// CANCEL while ringing and a busy callee (non-2xx ACK, hop by hop): scenario pairs straight against each other (no proxy) over UDP and TCP.
import t from 'tap';
import { testPairs } from './check.js';

const pairs = [
  { uac: 'uac_cancel', uas: 'uas_cancel', uacDurationMs: 20 },
  { uac: 'uac_486', uas: 'uas_486' },
] as const;

testPairs(t, pairs, 20);
