#!/usr/bin/env bash
# Debian packages the tests need: Mesa's lavapipe Vulkan driver from bookworm-backports (Dawn rejects
# Mesa 22), Chromium for report/dashboard tests, redis-server for the distributed tests, Debian's PyTorch and PIL
# (the FastViTHD cross-check against a PyTorch forward, and the loader/training baselines), libturbojpeg0 (the
# loader's JPEG decoder).
set -euo pipefail
need=()
vk_ok() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[3-9]|[3-9][0-9])\.'; }
vk_ok || need+=(mesa)
command -v chromium >/dev/null || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
# GNU time: the test runner's per-file CPU figures (it runs without, printing no CPU).
[ -x /usr/bin/time ] || need+=(time)
/usr/bin/python3 -c 'import torch, PIL' 2>/dev/null || need+=(torch)
# libjpeg-turbo's TurboJPEG library: the loader's JPEG decoder (through koffi); without it sharp decodes, slower.
[ -e /usr/lib/x86_64-linux-gnu/libturbojpeg.so.0 ] || ldconfig -p | grep -q 'libturbojpeg\.so\.0' || need+=(turbojpeg)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "setup-system: need root to install: ${need[*]}" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
if [[ " ${need[*]} " == *" mesa "* ]] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
for n in "${need[@]}"; do
  case $n in
    mesa) apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 ;;
    chromium) apt-get install -y -qq chromium ;;
    redis-server) apt-get install -y -qq redis-server ;;
    time) apt-get install -y -qq time ;;
    torch) apt-get install -y -qq python3-torch python3-pil ;;
    turbojpeg) apt-get install -y -qq libturbojpeg0 ;;
  esac
done
