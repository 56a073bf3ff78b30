#!/bin/sh
# Fills in the RTP range, then runs Asterisk in the foreground. No media address: rtpengine (through the
# edge) rewrites SDP, so Asterisk advertises its own internal address.
set -eu
: "${RTP_START:=10000}"
: "${RTP_END:=10099}"
sed -e "s/@RTP_START@/${RTP_START}/" -e "s/@RTP_END@/${RTP_END}/" /etc/asterisk/rtp.conf.template > /etc/asterisk/rtp.conf
exec asterisk -f -U asterisk -G asterisk
