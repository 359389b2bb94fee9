#!/usr/bin/env python
"""Stock django-oauth-toolkit project for the benchmark (see bench/README.md)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stock_dot.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
