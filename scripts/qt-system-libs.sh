#!/usr/bin/env bash
# The system libraries that the PyQt6 wheels (and vispy's OpenGL under Xvfb) need but do not bundle.
#
#   bash scripts/qt-system-libs.sh --check [PYTHON]   set-up's check: ldd over the Qt files below (PyQt6 of PYTHON,
#                                                    default .venv/bin/python) and the libraries loaded at run time;
#                                                    prints what is missing and exits 1, or prints nothing
#   bash scripts/qt-system-libs.sh --write [PYTHON]   maintainers, on a Debian machine where everything works: derive
#                                                    scripts/debian-packages.txt (read by setup.sh) from ldd + dpkg -S
#
# The Qt files are those a napari viewer with this plugin's widget loads (read from /proc/self/maps under Xvfb):
# the PyQt6 extension modules below, the platform plugins, the xcb GL integrations, the image format, icon engine
# and input context plugins. ldd follows them into the Qt6 libraries they pull in (libQt6XcbQpa, ...). The rest of
# the wheel (Multimedia, WebEngine, Wayland, Bluetooth, ...) is never loaded and needs libraries we do not install.
set -euo pipefail
cd "$(dirname "$0")/.."

MODULES="QtCore QtGui QtWidgets QtOpenGL QtOpenGLWidgets QtSvg QtSvgWidgets QtTest QtDBus QtPrintSupport"
PLUGINS="platforms/libqxcb.so platforms/libqoffscreen.so platforms/libqminimal.so xcbglintegrations/*.so
imageformats/*.so iconengines/*.so platforminputcontexts/*.so"
# Loaded with dlopen, so ldd cannot see them: OpenGL through glvnd (PyOpenGL asks for libOpenGL / libGL / libGLX,
# Qt for libEGL), Mesa's GLX/EGL vendors and its llvmpipe software renderer (there is no GPU under Xvfb).
RUNTIME_LIBS="libGL.so.1 libGLX.so.0 libOpenGL.so.0 libEGL.so.1 libGLX_mesa.so.0 libEGL_mesa.so.0"
DRI_DRIVER="swrast_dri.so"
# The programs test.sh and demo.sh run.
PROGRAMS="xvfb-run Xvfb xauth"
LIST=scripts/debian-packages.txt

mode="${1:-}"
PY="${2:-.venv/bin/python}"

qt_files() {  # the files to ldd, one per line
  local dir
  dir="$("$PY" -c 'import os, PyQt6; print(os.path.dirname(PyQt6.__file__))')"
  for m in $MODULES; do ls "$dir"/"$m".*so 2>/dev/null || true; done
  for p in $PLUGINS; do ls "$dir"/Qt6/plugins/$p 2>/dev/null || true; done
}

runtime_lib_path() {  # where the dynamic loader finds soname $1 (empty when it does not)
  "$PY" - "$1" <<'EOF'
import ctypes, sys
try:
    ctypes.CDLL(sys.argv[1])
except OSError:
    sys.exit(0)
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("/" + sys.argv[1]) or ("/" + sys.argv[1] + ".") in line:
        print(line.split()[-1]); break
else:
    print(sys.argv[1])
EOF
}

dri_driver_path() {
  local d
  for d in /usr/lib/*/dri /usr/lib64/dri /usr/lib/dri; do
    [ -e "$d/$DRI_DRIVER" ] && { echo "$d/$DRI_DRIVER"; return; }
  done
  return 0
}

case "$mode" in
--check)
  # One line per missing thing: "SONAME (needed by FILE)".
  files="$(qt_files)"
  [ -n "$files" ] || { echo "PyQt6 (installed in $PY's environment)"; exit 1; }
  missing="$(for f in $files; do
      LD_LIBRARY_PATH= ldd "$f" 2>/dev/null | awk -v f="${f##*/PyQt6/}" '/not found/ {print $1 " (needed by " f ")"}'
    done | sort -u -k1,1)"
  for l in $RUNTIME_LIBS; do
    [ -n "$(runtime_lib_path "$l")" ] || missing="$missing"$'\n'"$l (loaded at run time for OpenGL)"
  done
  [ -n "$(dri_driver_path)" ] || missing="$missing"$'\n'"$DRI_DRIVER (Mesa's software OpenGL renderer)"
  for p in $PROGRAMS; do
    command -v "$p" >/dev/null 2>&1 || missing="$missing"$'\n'"$p (program run by scripts/test.sh and demo.sh)"
  done
  missing="$(echo "$missing" | sed '/^$/d')"
  [ -z "$missing" ] && exit 0
  echo "$missing"
  exit 1
  ;;
--write)
  command -v dpkg >/dev/null || { echo "qt-system-libs: --write needs a Debian-like machine" >&2; exit 2; }
  files="$(qt_files)"
  [ -n "$files" ] || { echo "qt-system-libs: no PyQt6 in $PY's environment" >&2; exit 2; }
  # "path-or-name soname" pairs: every library the Qt files link (outside the wheel), the run-time ones, the programs.
  pairs="$(for f in $files; do LD_LIBRARY_PATH= ldd "$f"; done | awk '
      /not found/ {print "NOTFOUND " $1; next}
      $2 == "=>" && $3 ~ /^\// && $3 !~ /\/PyQt6\// {print $3 " " $1}
      $1 ~ /^\// {print $1 " " $1}' | sort -u)"
  if echo "$pairs" | grep -q '^NOTFOUND'; then
    echo "qt-system-libs: this machine lacks libraries Qt needs; install them first:" >&2
    echo "$pairs" | awk '$1 == "NOTFOUND" {print "  " $2}' >&2
    exit 1
  fi
  extra=""
  for l in $RUNTIME_LIBS; do
    p="$(runtime_lib_path "$l")"
    [ -n "$p" ] || { echo "qt-system-libs: $l does not load here" >&2; exit 1; }
    extra="$extra$p $l"$'\n'
  done
  p="$(dri_driver_path)"; [ -n "$p" ] || { echo "qt-system-libs: no $DRI_DRIVER here" >&2; exit 1; }
  extra="$extra$p $DRI_DRIVER"$'\n'
  for prog in $PROGRAMS; do
    p="$(command -v "$prog")" || { echo "qt-system-libs: no $prog here" >&2; exit 1; }
    extra="$extra$p $prog"$'\n'
  done
  # Map each file to its package. dpkg knows the path the package installed (on merged-/usr systems ldd reports
  # /lib/... for files installed as /usr/lib/...), so try the path as given, under /usr, and resolved.
  table="$(printf '%s\n%s' "$pairs" "$extra" | sed '/^$/d' | while read -r path name; do
      pkg=""
      for cand in "$path" "/usr$path" "$(readlink -f "$path")" "$(readlink -f "$path" | sed 's|^/usr||')"; do
        pkg="$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1)" && [ -n "$pkg" ] && break
      done
      [ -n "$pkg" ] || { echo "qt-system-libs: no package owns $path" >&2; exit 1; }
      echo "$pkg $name"
    done | sort -u)"
  qt_version="$("$PY" -c 'from importlib.metadata import version as v; print("PyQt6", v("PyQt6"), "PyQt6-Qt6", v("PyQt6-Qt6"))')"
  {
    echo "# Debian packages for Qt, OpenGL and Xvfb: what the PyQt6 wheels link but do not bundle, and what they load at"
    echo "# run time. GENERATED by scripts/qt-system-libs.sh --write (ldd + dpkg -S) -- do not edit by hand."
    echo "# Generated on $(. /etc/os-release && echo "$PRETTY_NAME") for $qt_version."
    echo "# package      the libraries / programs it provides that we need"
    echo "$table" | awk '{a[$1] = a[$1] " " $2} END {for (p in a) print p a[p]}' | sort
  } > "$LIST"
  echo "qt-system-libs: wrote $LIST ($(grep -vc '^#' "$LIST") packages)" >&2
  ;;
*)
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
