#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries the given
# executables load (ldd, then one dpkg-query -S), one per line, without the
# ones every Debian image has (libc6, libstdc++6, libgcc-s1). The Dockerfile's
# build stage runs it so that each runtime image installs exactly what its
# programs need, and nothing the compiler needed. Fails when a library
# belongs to no package (the image would miss it).
set -euo pipefail
essential='^(libc6|libstdc\+\+6|libgcc-s1)$'
mapfile -t libs < <(for exe in "$@"; do ldd "$exe" | awk '/=> \//{print $3}'; done | sort -u)
# usrmerge: dpkg knows each file under the path its package shipped it at,
# /lib/... or /usr/lib/...; ask for every spelling at once.
candidates=()
for lib in "${libs[@]}"; do
  real=$(readlink -f "$lib")
  for path in "$lib" "$real"; do
    candidates+=("/usr${path#/usr}" "${path#/usr}")
  done
done
owners=$(dpkg-query -S "${candidates[@]}" 2>/dev/null || true)
for lib in "${libs[@]}"; do
  base=$(basename "$lib")
  real=$(basename "$(readlink -f "$lib")")
  awk -v a="/$base" -v b="/$real" '
    function ends(s, t) { return length(s) >= length(t) && substr(s, length(s) - length(t) + 1) == t }
    ends($0, a) || ends($0, b) { found = 1 } END { exit !found }' <<<"$owners" ||
    { echo "runtime-packages: no package holds $lib" >&2; exit 1; }
done
# "pkg:arch: /path" or "pkg1:arch, pkg2:arch: /path" (diversions)
sed -E 's/: \/.*$//' <<<"$owners" | tr ',' '\n' | sed -E 's/^ +//; s/:.*$//' | sort -u | grep -Ev "$essential" || true
