"""A service booting as the README's lifespan example does: ``ensure_schema`` with no span of
its own, tracing configured from ``OTEL_*``. ``python -m tests.observability.boot BOOTSTRAP
INSTANCE`` prints the reply as JSON."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from contracts import ensure_schema
from worker.observability.tracing import tracing_configured

MANIFEST = Path(__file__).parents[2] / "examples" / "nexus" / "manifest.json"


async def boot(bootstrap_servers: str, instance: str) -> str:
    with tracing_configured(default_service="orchestrator"):
        reply = await ensure_schema(MANIFEST.read_bytes(), bootstrap_servers=bootstrap_servers,
                                    instance=instance, timeout_s=90)  # fmt: skip
    return reply.model_dump_json()


if __name__ == "__main__":
    print(asyncio.run(boot(sys.argv[1], sys.argv[2])))
