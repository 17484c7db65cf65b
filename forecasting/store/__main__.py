"""Prints the manifest JSON Schema: `python -m forecasting.store > docs/manifest.schema.json`."""

from __future__ import annotations

import sys

from forecasting.store.manifest import json_schema

if __name__ == "__main__":
    sys.stdout.write(json_schema())
