"""The handlers' arguments, resolved on the event loop rather than in a worker thread.

fast_depends (FastStream's injection) runs a custom field's ``use`` in a worker thread when it
is a plain function, and awaits it in place when it is a coroutine. FastStream's ``NoCastField``
and ``Context`` (``KafkaMessage`` is one) are plain functions, so every batch waited for two
thread hand-offs (a thread woken, the event loop woken back through its self-pipe) before the
gate saw it: 0.8-1.5 ms of a no-drift boot on a busy two-core machine, more than the rest of
FastStream's work on it. :class:`OnTheLoop` does the same work as a coroutine.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from fast_depends.library import CustomField
from faststream import Context
from faststream.kafka.message import KafkaMessage
from faststream.params.no_cast import NoCastField

__all__ = ["Message", "OnTheLoop", "Raw"]


class OnTheLoop(CustomField):
    """``inner`` (a custom field), its ``use`` awaited on the event loop."""

    def __init__(self, inner: CustomField) -> None:
        super().__init__(cast=inner.cast, required=inner.required)
        self.inner = inner

    def set_param_name(self, name: str) -> Self:
        self.inner.set_param_name(name)
        return super().set_param_name(name)

    # a coroutine on purpose: fast_depends awaits it in place (a plain one runs in a thread)
    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.inner.use(**kwargs)


#: The batch's record, as FastStream's ``KafkaMessage`` annotation gives it.
Message = Annotated[KafkaMessage, OnTheLoop(Context("message"))]


def Raw() -> OnTheLoop:  # used like FastStream's NoCast() in an annotation
    """The bodies as decoded, never cast (the gate parses and rejects them itself)."""
    return OnTheLoop(NoCastField())
