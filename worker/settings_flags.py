"""The command line's side of the settings: one ``--flag`` per setting, flags over environment
over defaults, problems named by flag and variable (never by value), and the README's tables."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from worker.errors import ConfigurationError
from worker.settings import GateSettings, WorkerSettings
from worker.settings_kafka import error_message

__all__ = ["add_flags", "markdown_table", "settings_from"]

S = TypeVar("S", bound=BaseSettings)


def _flag_type(annotation: Any) -> Any:
    if annotation in (int, float):
        return annotation
    if annotation is bool:
        return _boolean
    return str


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _flag_of(name: str) -> str:
    """The flag of a setting: ``--lock-timeout-ms``; ``--database`` (it repeats) for databases."""
    return "--database" if name == "databases" else "--" + name.replace("_", "-")


def add_flags(parser: Any, model: type[BaseSettings] = WorkerSettings) -> None:
    """One ``--flag`` per setting of ``model`` (``--database ALIAS=DSN`` repeats), all
    defaulting to unset, so an unset flag leaves the environment variable or the default in
    force."""
    for name, field in model.model_fields.items():
        if name == "databases":
            parser.add_argument(
                _flag_of(name),
                dest="databases",
                action="append",
                metavar="ALIAS=DSN",
                help="a database the worker may heal (repeat for more)",
            )
            continue
        env = "SCHEMAHEAL_" + name.upper()
        parser.add_argument(
            _flag_of(name),
            dest=name,
            type=_flag_type(field.annotation),
            default=None,
            help=f"{field.description or name} (env {env}; default {field.default})",
        )


def settings_from(args: Any, model: type[S]) -> S:
    """Settings from parsed flags over environment over defaults."""
    given = {
        name: getattr(args, name)
        for name in model.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        return model(**given)
    except ValidationError as exc:
        raise ConfigurationError("settings: " + _problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    """``database_proxy (--database-proxy, SCHEMAHEAL_DATABASE_PROXY): Input should be …``;
    never the value given, which may be a secret."""
    out = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        where = f"{name} ({_flag_of(name)}, SCHEMAHEAL_{name.upper()})" if name else ""
        out.append(f"{where}: {error_message(error)}")
    return "; ".join(out)


def markdown_table(model: type[BaseSettings] = WorkerSettings, *, only_own: bool = False) -> str:
    """A README configuration table, generated so that it cannot fall behind the model
    (``only_own``: just the fields the model adds to :class:`GateSettings`)."""
    rows = ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if only_own and name in GateSettings.model_fields:
            continue
        flag = _flag_of(name) + (" ALIAS=DSN" if name == "databases" else "")
        default = "" if field.default_factory is not None else field.default
        shown = f"`{default}`" if default not in ("", None) else ""
        rows.append(f"| `{flag}` | `SCHEMAHEAL_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)
