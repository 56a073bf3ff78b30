#!/bin/sh
# Fills in the media address and RTP range, then runs Asterisk in the foreground.
set -eu
: "${MEDIA_IP:?MEDIA_IP: the public address RTP reaches this container at}"
: "${RTP_START:=10000}"
: "${RTP_END:=10099}"
sed -i "s/^external_media_address=.*/external_media_address=${MEDIA_IP}/" /etc/asterisk/pjsip.conf
sed -e "s/@RTP_START@/${RTP_START}/" -e "s/@RTP_END@/${RTP_END}/" /etc/asterisk/rtp.conf.template > /etc/asterisk/rtp.conf
exec asterisk -f -U asterisk -G asterisk
