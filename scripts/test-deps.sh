#!/usr/bin/env bash
# Install the Debian packages the integration tests start private servers
# from (mariadb-server, redis-server, etcd-server), the tools that check
# deploy/ (promtool from prometheus, systemd-analyze from systemd), and chromium
# with a CJK font for the console's browser tests, when they are missing and
# we are root. Without root, say what is missing; the tests that need a
# missing server then fail with a message naming it.
set -euo pipefail
need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
# promtool (checks deploy/prometheus/alerts.yml) ships with Debian's prometheus.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# systemd-analyze verify checks deploy/systemd/*.service.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# Browser tests of the console: Debian's chromium driven by Playwright (never
# a browser download), and a CJK font so the Chinese interface is not boxes.
if [ ! -x /usr/bin/chromium ]; then
    need+=(chromium fonts-wqy-microhei)
elif ! fc-list 2>/dev/null | grep -qi "wqy"; then
    need+=(fonts-wqy-microhei)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing test servers: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The packages' own services are not wanted: tests start private instances.
    made_policy=no
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        made_policy=yes
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if [ "$made_policy" = yes ]; then rm -f /usr/sbin/policy-rc.d; fi
else
    echo "warning: missing ${need[*]} (not root: cannot install); tests needing them will fail" >&2
fi
exit 0
