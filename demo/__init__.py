"""Demo programs that run beside actas (``scripts/demo.sh``); not part of the actas server."""
