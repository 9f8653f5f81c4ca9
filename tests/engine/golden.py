"""The golden text of a plan: the exact SQL apply runs, then the drift it leaves, as comments."""

from __future__ import annotations

from worker.commands.output import commented
from worker.engine.plan import Plan
from worker.engine.render import script


def golden_text(plan: Plan) -> str:
    lines = [command + ";" for command in script(plan)]
    lines += [f"-- drift {d.kind.value} {d.target}" for d in plan.drift]
    lines += [f"-- migration {m.kind.value} {m.id}" for m in plan.migrations]
    lines += [commented(f"contract (not run by the heal): {s.sql};") for s in plan.contract]
    return "\n".join(lines) + "\n"
