"""The bundled ETTh1 file is the byte-exact upstream file its license requires."""

from __future__ import annotations

import hashlib

from tests.conftest import ETTH1

UPSTREAM_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"


def test_bundled_etth1_is_byte_exact() -> None:
    assert hashlib.sha256(ETTH1.read_bytes()).hexdigest() == UPSTREAM_SHA256
