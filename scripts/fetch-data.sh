#!/usr/bin/env bash
# Fetch edgessl's public data without web downloads, from Debian packages:
#   fashion-mnist  dataset-fashion-mnist  -> $CACHE/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
#   vtest          opencv-doc (vtest.avi) -> $CACHE/vtest/vtest.avi, and with ffmpeg installed
#                                            $CACHE/vtest/vtest-192x144.gray8 for --stream
# Uses `apt-get download` + `dpkg -x` (no root, nothing installed). Mirrors `edgessl data fetch`.
#
# Usage: scripts/fetch-data.sh [fashion-mnist|vtest|all]   (default: fashion-mnist)
# Cache: $EDGESSL_CACHE, else ./.cache/edgessl
set -euo pipefail

CACHE="${EDGESSL_CACHE:-./.cache/edgessl}"
WHAT="${1:-fashion-mnist}"

WORK=""
# Remove a half-finished download whatever way the script ends.
trap '[[ -n "$WORK" ]] && rm -rf "$WORK"' EXIT

die() { echo "fetch-data: $*" >&2; exit 1; }

need_apt() {
  command -v apt-get >/dev/null && command -v dpkg >/dev/null && return 0
  die "apt-get/dpkg not available (not a Debian-based system).
Point edgessl at files instead: --data idx:IMAGES,LABELS, --data cifar10:DIR, --data stl10:DIR,
--frames DIR (image folder) or --stream PATH|- (raw frames, e.g. from ffmpeg -f rawvideo)."
}

# apt_extract PACKAGE DEST MEMBER... : copy MEMBER paths out of PACKAGE into DEST.
apt_extract() {
  local pkg="$1" dest="$2"; shift 2
  mkdir -p "$dest"
  WORK="$(mktemp -d "$dest/.apt-$pkg.XXXXXX")"
  local work="$WORK"
  if ! (cd "$work" && apt-get download "$pkg" >/dev/null 2>&1); then
    echo "fetch-data: apt-get download $pkg failed; refreshing package lists (apt-get update)" >&2
    apt-get update >/dev/null 2>&1 || die "apt-get update failed: run it as root, then retry"
    (cd "$work" && apt-get download "$pkg" >/dev/null) || die "apt-get download $pkg failed"
  fi
  dpkg -x "$work"/*.deb "$work/root"
  local m
  for m in "$@"; do
    cp "$work/root/$m" "$dest/$(basename "$m").part"
    mv "$dest/$(basename "$m").part" "$dest/$(basename "$m")"
  done
  rm -rf "$work"
  WORK=""
}

fetch_fashion_mnist() {
  local dir="$CACHE/fashion-mnist" files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz) missing=0 f
  for f in "${files[@]}"; do [[ -f "$dir/$f" ]] || missing=1; done
  if [[ $missing == 1 ]]; then
    need_apt
    apt_extract dataset-fashion-mnist "$dir" "${files[@]/#/usr/share/datasets/fashion-mnist/}"
  fi
  echo "Fashion-MNIST ready in $dir"
}

fetch_vtest() {
  local dir="$CACHE/vtest"
  if [[ ! -f "$dir/vtest.avi" ]]; then
    need_apt
    apt_extract opencv-doc "$dir" usr/share/doc/opencv-doc/examples/data/vtest.avi
  fi
  echo "vtest.avi ready: $dir/vtest.avi"
  local raw="$dir/vtest-192x144.gray8"
  if [[ ! -f "$raw" ]]; then
    command -v ffmpeg >/dev/null || die "ffmpeg not found: install it (apt-get install ffmpeg) to decode vtest.avi, or stream any video:
  ffmpeg -i VIDEO -vf scale=192:144 -f rawvideo -pix_fmt gray - | edgessl pretrain --stream - --stream-size 192x144"
    ffmpeg -nostdin -v error -y -i "$dir/vtest.avi" -vf scale=192:144 -f rawvideo -pix_fmt gray "$raw.part"
    mv "$raw.part" "$raw"
  fi
  echo "decoded: $raw (use --stream $raw --stream-format gray8 --stream-size 192x144)"
}

case "$WHAT" in
  fashion-mnist) fetch_fashion_mnist ;;
  vtest) fetch_vtest ;;
  all) fetch_fashion_mnist; fetch_vtest ;;
  *) die "unknown dataset '$WHAT' (fashion-mnist, vtest or all)" ;;
esac
