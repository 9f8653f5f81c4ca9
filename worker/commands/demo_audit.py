"""The demo's closing check: the replay must show exactly the boots the demo made. Pure.

"No mismatches" alone is not enough: an audit that lost a boot has no mismatch about it. So the
replay's boots must be exactly the requests the demo published (by id; the demo knows a
request's id from its reply, and a replica without a reply already fails the demo), each with
the reply the replica received."""

from __future__ import annotations

from collections.abc import Sequence

from contracts import SchemaHealed
from worker.replay.audit import Audit


def audit_problems(found: Audit, received: Sequence[SchemaHealed]) -> list[str]:
    """Why the replay disagrees with what the demo saw; empty when it agrees."""
    return [*_mismatches(found), *_boots_are_requests(found, received),
            *_replies_are_received(found, received)]  # fmt: skip


def _mismatches(found: Audit) -> list[str]:
    return [f"{len(found.mismatches)} mismatch(es)"] if found.mismatches else []


def _boots_are_requests(found: Audit, received: Sequence[SchemaHealed]) -> list[str]:
    published = {r.request_id for r in received}
    booted = [b.request.request_id for b in found.boots]
    problems = []
    if missing := sorted(published - set(booted)):
        problems.append(f"requests missing from the replay: {', '.join(missing)}")
    if extra := sorted(set(booted) - published):
        problems.append(f"boots the demo did not make: {', '.join(extra)}")
    if len(booted) != len(set(booted)):
        problems.append("a boot appears twice")
    return problems


def _replies_are_received(found: Audit, received: Sequence[SchemaHealed]) -> list[str]:
    said = {r.request_id: r.outcome for r in received}
    replayed = {b.request.request_id: b.reply.reply.outcome if b.reply else None
                for b in found.boots}  # fmt: skip
    differ = sorted(k for k in said if k in replayed and replayed[k] != said[k])
    return [f"replies not as received: {', '.join(differ)}"] if differ else []
