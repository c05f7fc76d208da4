#!/usr/bin/env bash
# System packages CoSeg Studio needs on Debian/Ubuntu: open3d (libusb, libgomp),
# Qt 6 (EGL/GL, xkbcommon, xcb), Mesa llvmpipe for OpenGL, Xvfb for headless GL.
# Skips itself when everything is present or when not root / not apt-based.
set -euo pipefail
PKGS=(libusb-1.0-0 libgomp1 libegl1 libgl1 libgl1-mesa-dri libglx-mesa0 libxkbcommon0
      libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
      libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
      libxcb-xfixes0 libxrender1 libdbus-1-3 libfontconfig1 libfreetype6 xvfb xauth)
command -v dpkg-query >/dev/null || { echo "system-deps: not a Debian system; install the equivalents of: ${PKGS[*]}"; exit 0; }
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
