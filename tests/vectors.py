"""The protocol's test vectors, read from the repository (docs/protocol-vectors-v1.json).

Imports nothing from the integration or the client, so every signer is checked
against the same bytes without sharing code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_PATH = Path(__file__).parents[1] / "docs" / "protocol-vectors-v1.json"
# The original copy, beside the repository on the development machine only.
ORIGINAL_VECTORS_PATH = (
    Path(__file__).parents[2] / "shared" / "protocol" / "vectors-v1.json"
)

VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
REQUEST_VECTORS = [v for v in VECTORS if v["kind"] == "request"]
RESPONSE_VECTORS = [v for v in VECTORS if v["kind"] == "response"]
