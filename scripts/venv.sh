# Sourced by demo.sh and test.sh: make sure $VENV holds a Python >= 3.12 with actas installed.
#
#   ensure_venv LABEL EXTRAS      e.g. ensure_venv test.sh "[dev]"
#
# Creates $VENV (default .venv) with scripts/python.sh's interpreter when missing. The pip
# install is skipped while pyproject.toml and the Python version are unchanged since the last
# install of these extras (a stamp file in the venv); ACTAS_REINSTALL=1 forces it.

ensure_venv() {
    local label="$1" extras="$2"
    VENV="${VENV:-.venv}"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    if [ ! -e "$VENV/bin/python" ] && [ ! -L "$VENV/bin/python" ]; then
        local python
        python="$("$ROOT/scripts/python.sh")"
        echo "$label: creating virtual environment $VENV with $python" >&2
        "$python" -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then
        echo "$label: $VENV/bin/python is not a working Python >= 3.12." >&2
        echo "$label: remove $VENV (or set VENV=another-dir) and run again." >&2
        exit 1
    fi
    local want stamp="$VENV/.actas-installed$extras"
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    if [ "${ACTAS_REINSTALL:-0}" = 1 ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "$label: pip install -e '.$extras' into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --editable ".$extras"
        printf '%s\n' "$want" >"$stamp"
    fi
}
