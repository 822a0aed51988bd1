#!/usr/bin/env bash
# Installs the Debian programs cotenant drives (lab workloads, the node_exporter baseline) when any is missing.
set -euo pipefail
# Lab applications with their load generators: nginx + wrk, memcached + memaslap (libmemcached-tools),
# PostgreSQL + pgbench, sqlite3, ffmpeg (x264), gcc on binutils' libiberty sources, xz, bzip2 (gzip is
# Essential), ripgrep, GNU sort.
# Chromium renders the API docs page in a test (headless, network blocked), driven by Playwright.
packages=(stress-ng sysbench fio redis-server redis-tools zstd p7zip-full prometheus-node-exporter openssl procps
    nginx wrk memcached libmemcached-tools postgresql postgresql-contrib sqlite3 ffmpeg binutils-source
    gcc make xz-utils bzip2 ripgrep coreutils util-linux chromium)
binaries=(stress-ng sysbench fio redis-server redis-benchmark zstd 7z prometheus-node-exporter openssl ps
    nginx wrk memcached memcaslap pgbench pg_isready sqlite3 ffmpeg gcc make xz bzip2 gzip rg sort setpriv chromium)
missing=0
for binary in "${binaries[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || missing=1
done
compgen -G "/usr/src/binutils/binutils-*.tar.xz" >/dev/null || missing=1
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing=1
[ "$missing" = 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo -n); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
# Debian starts these as services on install; cotenant runs its own instances inside its cgroups.
for service in redis-server prometheus-node-exporter nginx memcached postgresql; do
    "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || "${sudo[@]}" service "$service" stop >/dev/null 2>&1 || true
done
