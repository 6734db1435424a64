#!/usr/bin/env bash
# Set up this library on a fresh machine: headless-rendering libraries (and Chromium, which turns reports into
# PDF/PNG in the tests), a virtual environment in .venv, the package with its dev extras (editable, with the `wm`
# command in .venv/bin), and a check that MuJoCo renders offscreen. Safe to re-run.
#
#   bash setup.sh                # CPU machine: torch pinned to 2.13.0 (constraints.txt)
#   WM_TORCH=skip bash setup.sh  # GPU workstation: keep the CUDA torch already in .venv (or install your own)
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed"' || {
  echo "error: $PY is older than Python 3.10; set PYTHON=/path/to/python3.10+" >&2; exit 2; }

# 1. Debian libraries for headless MuJoCo rendering (EGL through Mesa; OSMesa as the fallback).
need_pkgs=()
ldconfig -p | grep -q 'libEGL.so.1' || need_pkgs+=(libegl1)
ldconfig -p | grep -q -E 'libEGL_mesa.so.0|libEGL_nvidia.so.0' || need_pkgs+=(libegl-mesa0)
ldconfig -p | grep -q 'libGL.so.1' || need_pkgs+=(libgl1)
ldconfig -p | grep -q 'libOSMesa.so' || need_pkgs+=(libosmesa6)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need_pkgs+=(chromium)  # headless reports
if [ ${#need_pkgs[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  if command -v apt-get >/dev/null; then
    echo "setup: installing ${need_pkgs[*]} for headless rendering and reports"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null \
      || echo "setup: warning: could not install ${need_pkgs[*]}; rendering or reports may fail" >&2
  else
    echo "setup: warning: missing ${need_pkgs[*]} and no apt-get; install them by hand (EGL or OSMesa, chromium)" >&2
  fi
fi

# 2. Virtual environment and the package (editable, with dev extras).
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null
if [ "${WM_TORCH:-pin}" = "skip" ]; then
  "$VPY" -m pip install -q -e ".[dev,bench]"
else
  "$VPY" -m pip install -q -c constraints.txt -e ".[dev,bench]"
fi

# 3. Find a headless OpenGL backend that really renders, and record it for envs.rendering.
backend=""
for gl in ${MUJOCO_GL:-egl osmesa}; do
  if MUJOCO_GL=$gl PYOPENGL_PLATFORM=$gl "$VPY" - <<'PYEOF' >/dev/null 2>&1
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 1"/><geom size=".1"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 32, 32)
r.update_scene(mujoco.MjData(m))
assert r.render().shape == (32, 32, 3)
PYEOF
  then backend=$gl; break; fi
done
if [ -z "$backend" ]; then
  echo "error: MuJoCo cannot render offscreen with EGL or OSMesa; install libegl1+libegl-mesa0 or libosmesa6" >&2
  exit 1
fi
echo "$backend" > .venv/mujoco_gl
.venv/bin/wm --help >/dev/null || { echo "error: the wm command does not start; see the pip output above" >&2; exit 1; }
echo "setup: ready (.venv, torch $("$VPY" -c 'import torch; print(torch.__version__)'), MuJoCo rendering via $backend)"
