"""JSON Schema documents for the contracts, for services written in other languages.

The committed files under ``contracts/schemas/`` are generated from the pydantic models; a test
keeps them current. Regenerate with ``make schemas`` (``python -m contracts.jsonschema --write``).
The JSON Schema checks shape only; the worker also checks meaning (see contracts.semantics), so a
document that passes the schema can still be rejected, with a message that says why.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from contracts.events import SchemaHealed, ServiceHeartbeat, ServiceStarting
from contracts.manifest import Manifest

__all__ = ["SCHEMA_DIR", "documents"]

SCHEMA_DIR = Path(__file__).parent / "schemas"


def documents() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema document, for every published contract."""
    out = {}
    for name, model in (
        ("manifest.schema.json", Manifest),
        ("service-starting.schema.json", ServiceStarting),
        ("service-heartbeat.schema.json", ServiceHeartbeat),
        ("schema-healed.schema.json", SchemaHealed),
    ):
        document = model.model_json_schema(by_alias=True, mode="validation")
        document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        document["$id"] = f"https://schemaheal.dev/schemas/{name}"
        out[name] = document
    return out


def render(document: dict[str, Any]) -> str:
    """Stable text of a document: sorted keys, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    """Write (``--write``) or check the committed schema files."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the committed files")
    args = parser.parse_args()
    stale = []
    for name, document in documents().items():
        path = SCHEMA_DIR / name
        text = render(document)
        if args.write:
            path.write_text(text, encoding="utf-8")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        raise SystemExit(f"stale JSON Schema files: {', '.join(stale)}; run `make schemas`")


if __name__ == "__main__":
    main()
