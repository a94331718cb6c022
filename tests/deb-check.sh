#!/usr/bin/env bash
# Installs a zdm .deb (cpack -G DEB) into a fresh Debian 12 root, as a
# user would with apt, and runs `zdm --version`, the man page and
# completion files' presence, and the quickstart against the installed
# binary.  Needs root and the pristine root that ../shared/tools/fresh-check
# builds (/tmp/fresh/pristine; run fresh-check once first).
#   cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release && cmake --build build/release
#   (cd build/release && cpack -G DEB) && tests/deb-check.sh build/release/zdm_*.deb
set -u
deb=$(readlink -f "${1:?usage: tests/deb-check.sh ZDM.deb}")
here=$(cd "$(dirname "$0")/.." && pwd)
P=/tmp/fresh/pristine
[ -f "$P/.ok" ] || { echo "deb-check: no $P: run ../shared/tools/fresh-check once first"; exit 2; }
R=$(mktemp -d /tmp/deb-check.XXXXXX)
cp -a "$P/." "$R/"
git clone -q "$here" "$R/root/zdm" || exit 2
cp "$deb" "$R/root/zdm.deb"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null
for m in proc sys dev dev/pts; do mount --bind "/$m" "$R/$m"; done
cleanup() { for m in dev/pts dev sys proc; do umount -l "$R/$m" 2>/dev/null; done; rm -rf "$R"; }
trap cleanup EXIT
chroot "$R" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb DEBIAN_FRONTEND=noninteractive \
  /bin/bash -euc '
    apt-get update -qq
    apt-get install -y -qq /root/zdm.deb >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }
    command -v zdm
    zdm --version
    test -s /usr/share/man/man1/zdm.1
    test -s /usr/share/bash-completion/completions/zdm
    test -s /usr/share/zsh/vendor-completions/_zdm
    cd /root/zdm && ZDM=/usr/bin/zdm deploy/quickstart.sh | tail -n 4
  '
rc=$?
echo "deb-check: exit $rc"
exit $rc
