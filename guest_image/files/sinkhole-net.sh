#!/bin/sh
# pyti-sinkhole.service's set-up (as root, at boot, before the RAM snapshot):
# a dummy interface with one address and the default route, and the redirects.
# No NIC exists; the dummy device drops whatever is not redirected.
set -eu
ip link add sink0 type dummy 2>/dev/null || true
ip addr replace 198.18.0.1/32 dev sink0
ip link set sink0 up
ip route replace default dev sink0
nft -f /opt/pyti/sinkhole.nft
