"""Tiny builders for manifests in tests: ``manifest(table("t", column("id", "uuid")))``."""

from __future__ import annotations

from typing import Any


def column(name: str, type_: str = "text", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def table(name: str, *columns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "columns": list(columns), **extra}


def manifest(*tables: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"service": "orchestrator", "database": "nexus", "tables": list(tables), **extra}


def pk(*columns: str) -> dict[str, Any]:
    return {"columns": list(columns)}


def fk(columns: list[str], table_: str, refs: list[str], **extra: Any) -> dict[str, Any]:
    return {"columns": columns, "references": {"table": table_, "columns": refs}, **extra}


TENANTS = table(
    "tenants", column("id", "integer", nullable=False), column("name"), primary_key=pk("id")
)
