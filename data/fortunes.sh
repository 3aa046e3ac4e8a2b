#!/usr/bin/env bash
# Makes sure Debian's fortune corpora are installed and prints their paths, one per line.
# Quiet when the packages are already there. See data/README.md for what each corpus is.
set -euo pipefail

packages=(fortunes-zh fortunes)
dir=/usr/share/games/fortunes
corpora=(tang300 song100 chinese literature songs-poems)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "fortunes.sh: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

status=0
for name in "${corpora[@]}"; do
  if [[ -f "$dir/$name" ]]; then
    echo "$dir/$name"
  else
    echo "fortunes.sh: $dir/$name is missing after installing ${packages[*]}" >&2
    status=1
  fi
done
exit $status
