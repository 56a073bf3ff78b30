#!/usr/bin/env python3
"""The edge's own INVITE -> 100 Trying time, read off the wire: a packet socket on the loopback interface
(inside the bench's network namespace) with kernel receive timestamps (SO_TIMESTAMPNS), so neither the
caller's event loop nor its GC pauses count. For each Call-ID: the INVITE sent to the edge's port, the first
100 sent from it. Runs until SIGTERM/SIGINT, then prints one JSON line: {"n":…, "ms":[…]} (sorted).
usage: wire_latency.py PORT"""
import json, signal, socket, struct, sys

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
port = int(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.bind(('lo', 0))
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)

# A classic BPF filter so that only the two packets per call that matter reach Python (the rest of the
# traffic would cost this process more CPU than the edge): the sender's copy (PACKET_OUTGOING) of an IPv4
# UDP datagram with a 20-byte IP header that is an INVITE to PORT or a 100 from PORT.
def insn(code, jt, jf, k):
    return struct.pack('HBBI', code, jt, jf, k & 0xffffffff)
LD_W_ABS, LD_H_ABS, LD_B_ABS, JEQ, RET = 0x20, 0x28, 0x30, 0x15, 0x06
SKF_AD_PKTTYPE = -0x1000 + 4
prog = [
    insn(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE), insn(JEQ, 0, 13, socket.PACKET_OUTGOING),  # 0,1
    insn(LD_H_ABS, 0, 0, 12), insn(JEQ, 0, 11, 0x0800),                                # 2,3
    insn(LD_B_ABS, 0, 0, 14), insn(JEQ, 0, 9, 0x45),                                   # 4,5
    insn(LD_B_ABS, 0, 0, 23), insn(JEQ, 0, 7, 17),                                     # 6,7
    insn(LD_W_ABS, 0, 0, 42), insn(JEQ, 0, 2, 0x494e5649),                             # 8,9  "INVI"
    insn(LD_H_ABS, 0, 0, 36), insn(JEQ, 4, 3, port),                                   # 10,11 dport
    insn(JEQ, 0, 2, 0x5349502f),                                                       # 12 "SIP/"
    insn(LD_H_ABS, 0, 0, 34), insn(JEQ, 1, 0, port),                                   # 13,14 sport
    insn(RET, 0, 0, 0), insn(RET, 0, 0, 0xffff),                                       # 15 drop, 16 accept
]
import ctypes
code = ctypes.create_string_buffer(b''.join(prog))
s.setsockopt(socket.SOL_SOCKET, 26, struct.pack('HL', len(prog), ctypes.addressof(code)))  # SO_ATTACH_FILTER
s.settimeout(0.2)
invites, out, stop = {}, [], False

def done(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, done)
signal.signal(signal.SIGINT, done)

def call_id(payload):
    i = payload.find(b'\r\nCall-ID:')
    if i < 0:
        i = payload.find(b'\r\ni:')
    if i < 0:
        return None
    j = payload.find(b'\r\n', i + 2)
    return payload[payload.index(b':', i) + 1:j].strip()

while not stop:
    try:
        data, anc, _flags, addr = s.recvmsg(70000, socket.CMSG_SPACE(16))
    except socket.timeout:
        continue
    except InterruptedError:
        continue
    if addr[2] != socket.PACKET_OUTGOING:  # lo shows each packet twice; keep the sender's copy
        continue
    ts = None
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack('qq', value[:16])
            ts = sec + nsec / 1e9
    # Ethernet header (14 bytes on lo), IPv4 only, UDP
    if ts is None or len(data) < 42 or data[12:14] != b'\x08\x00' or data[23] != 17:
        continue
    ihl = (data[14] & 0x0f) * 4
    sport, dport = struct.unpack('!HH', data[14 + ihl:18 + ihl])
    payload = data[22 + ihl:]
    if dport == port and payload.startswith(b'INVITE '):
        cid = call_id(payload)
        if cid is not None and cid not in invites:
            invites[cid] = ts
    elif sport == port and payload.startswith(b'SIP/2.0 100'):
        cid = call_id(payload)
        t0 = invites.pop(cid, None) if cid is not None else None
        if t0 is not None:
            out.append((ts - t0) * 1000)

out.sort()
print(json.dumps({'n': len(out), 'ms': [round(x, 4) for x in out]}))
