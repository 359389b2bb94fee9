#!/usr/bin/env bash
# Print the path of a working Python >= 3.12 interpreter (Django 6 needs it).
#
# Tried in order, each one checked by actually running it:
#   $ACTAS_PYTHON, python3.13, python3.12, python3,
#   pyenv (PYENV_VERSION=<3.12+ version> python3.x, then $(pyenv root)/versions/3.1[23]*/bin/python3),
#   /root/.pyenv/versions/3.1[23]*/bin/python3
# Exits 1 with a message on stderr when none works.
set -uo pipefail

# The interpreter prints its own real path, so a pyenv shim resolves to the actual binary.
CHECK='import sys; assert sys.version_info >= (3, 12); print(sys.executable)'

# try [VAR=value ...] command: print the interpreter's path and exit 0 if it is good.
try() {
    local out
    out="$(env "$@" -c "$CHECK" 2>/dev/null)" || return 1
    [ -n "$out" ] && [ -x "$out" ] || return 1
    printf '%s\n' "$out"
    exit 0
}

if [ -n "${ACTAS_PYTHON:-}" ]; then
    try "$ACTAS_PYTHON" ||
        echo "python.sh: ACTAS_PYTHON=$ACTAS_PYTHON is not a working Python >= 3.12; looking further." >&2
fi

for candidate in python3.13 python3.12 python3; do
    command -v "$candidate" >/dev/null 2>&1 && try "$candidate"
done

pyenv_roots=()
if command -v pyenv >/dev/null 2>&1; then
    # pyenv shims only answer for the selected version; select each installed 3.12+ in turn.
    versions="$(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.|$)' | sort -rV)"
    for version in 3.13.0 $versions; do
        minor="${version%.*}"
        try PYENV_VERSION="$version" "python$minor"
        try PYENV_VERSION="$version" python3
    done
    root="$(pyenv root 2>/dev/null)" && [ -n "$root" ] && pyenv_roots+=("$root")
fi
pyenv_roots+=("${PYENV_ROOT:-/root/.pyenv}" /root/.pyenv)

for root in "${pyenv_roots[@]}"; do
    # Newest first.
    for exe in $(ls -d "$root"/versions/3.1[23]*/bin/python3 2>/dev/null | sort -rV); do
        try "$exe"
    done
done

cat >&2 <<'EOF'
python.sh: no Python >= 3.12 found (Django 6 needs it).
Tried: $ACTAS_PYTHON, python3.13, python3.12, python3, pyenv versions 3.12+ and
$(pyenv root)/versions/3.1[23]*/bin/python3.
Install one (e.g. `pyenv install 3.13`) or point ACTAS_PYTHON at it:
    ACTAS_PYTHON=/path/to/python3.13 scripts/demo.sh
EOF
exit 1
