// The header scrub toward the public side matches whole addresses only (a caller's Call-ID
// `x@127.0.8.200` must survive a backend at 127.0.8.2).
import t from 'tap'
import { containsAddress } from '../../src/proxy/proxy.js'

t.ok(containsAddress('127.0.8.2:5080', '127.0.8.2'), 'followed by a port')
t.ok(containsAddress('<sip:asterisk@127.0.8.2>', '127.0.8.2'))
t.ok(containsAddress('SIP/2.0/UDP 127.0.8.2;branch=x', '127.0.8.2'))
t.notOk(containsAddress('abc@127.0.8.200', '127.0.8.2'), 'a longer address is another address')
t.notOk(containsAddress('10.127.0.8.2', '127.0.8.2'), 'preceded by more of an address')
t.ok(containsAddress('[fd00::2]:5060', 'fd00::2'))
t.notOk(containsAddress('fd00::2a', 'fd00::2'), 'IPv6: a following hex digit continues the address')
t.ok(containsAddress('x 127.0.8.200 y 127.0.8.2', '127.0.8.2'), 'a later whole match counts')
