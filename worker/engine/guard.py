"""Defence in depth: every generated statement is parsed again before it runs.

The renderer writes SQL only from validated values, quoting every identifier and qualifying
every name. Still, right before execution each statement is re-parsed with PostgreSQL's grammar
(pglast) and must be exactly one statement of a kind a plan may contain. ``DROP TABLE``,
``DELETE``, ``TRUNCATE``, ``DO`` (but the one block :mod:`worker.engine.expand_column_props`
writes, byte for byte), a second statement smuggled in: refused, whatever produced them.
"""

from __future__ import annotations

import json
from typing import Any

from pglast.parser import ParseError, parse_sql_json

from worker.engine.expand_column_props import is_carry_block
from worker.engine.gcpause import paused_gc
from worker.errors import PermanentError

# Node names of PostgreSQL's parse tree (pglast's JSON of it: ten times faster to get than its
# Python objects, which cost 0.7 ms per CREATE TABLE -- 1.4 s of a 1000-table heal).
_KINDS = frozenset({
    "CreateSchemaStmt", "CreateExtensionStmt", "CreateEnumStmt", "AlterEnumStmt",
    "CreateSeqStmt", "AlterSeqStmt", "CreateStmt", "IndexStmt", "AlterTableStmt",
    "CommentStmt", "DropStmt", "VariableSetStmt", "CreateFunctionStmt", "CreateTrigStmt",
})  # fmt: skip
#: the one function and trigger kind a plan creates: an online migration's sync trigger
_SYNC_PREFIX = "schemaheal_sync_"
_ALTER_TABLE = frozenset({
    "AT_AddColumn", "AT_ColumnDefault", "AT_DropNotNull", "AT_SetNotNull",
    "AT_AlterColumnType", "AT_AddConstraint", "AT_ValidateConstraint",
    "AT_DropConstraint",  # only IF EXISTS, of a constraint this heal just added (see below)
})  # fmt: skip


class UnsafeStatementError(PermanentError):
    code = "unsafe-statement"


def check(sql: str) -> None:
    """Raise :class:`UnsafeStatementError` unless ``sql`` is one statement a plan may contain."""
    check_batch(sql, 1)


def check_batch(sql: str, count: int) -> None:
    """Raise :class:`UnsafeStatementError` unless ``sql`` is exactly ``count`` statements, each
    one a plan may contain (a transaction's statements sent in one round trip)."""
    with paused_gc():  # the parse tree: tens of thousands of acyclic objects for a batch
        try:
            statements = json.loads(parse_sql_json(sql)).get("stmts", [])
        except ParseError as exc:
            raise UnsafeStatementError(
                f"refusing to run a statement that does not parse: {exc}"
            ) from None
        if len(statements) != count:
            expected = "one" if count == 1 else str(count)
            raise UnsafeStatementError(
                f"refusing to run {len(statements)} statements as {expected}"
            )
        for statement in statements:
            _check_statement(statement["stmt"])


def _check_statement(stmt: dict[str, Any]) -> None:
    ((kind, node),) = stmt.items()
    if kind == "DoStmt" and _carries(node):
        return
    if kind not in _KINDS:
        raise UnsafeStatementError(f"refusing to run a {kind}: not part of a plan")
    if kind == "AlterTableStmt":
        _check_alter_table(node)
    if kind in ("CreateFunctionStmt", "CreateTrigStmt"):
        _check_sync(kind, node)
    # the only DROP a plan has: an INVALID index left by a failed concurrent build
    index_drop = node.get("removeType") == "OBJECT_INDEX" and node.get("concurrent", False)
    if kind == "DropStmt" and not index_drop:
        raise UnsafeStatementError("refusing a DROP other than DROP INDEX CONCURRENTLY")
    if kind == "VariableSetStmt" and node.get("name") not in ("lock_timeout", "statement_timeout"):
        raise UnsafeStatementError(f"refusing to SET {node.get('name')}")


def _carries(node: dict[str, Any]) -> bool:
    """The one ``DO`` a plan has: a migration's new column given the old one's privileges,
    settings, comment and labels (:mod:`worker.engine.expand_column_props`), byte for byte as
    that module writes it."""
    args = node.get("args", [])
    if len(args) != 1 or args[0].get("DefElem", {}).get("defname") != "as":
        return False  # a LANGUAGE clause, or no body
    body = args[0]["DefElem"].get("arg", {}).get("String", {}).get("sval")
    return isinstance(body, str) and is_carry_block(body)


def _last_name(names: list[dict[str, Any]] | None) -> str:
    return str(names[-1]["String"]["sval"]) if names else ""


def _check_sync(kind: str, node: dict[str, Any]) -> None:
    """Only an online migration's sync trigger: a row trigger calling the function of its name,
    and that function (no arguments, returning trigger)."""
    function = _last_name(node.get("funcname"))
    if kind == "CreateTrigStmt":
        name = node.get("trigname", "")
        if not (name.startswith(_SYNC_PREFIX) and function == name and node.get("row")):
            raise UnsafeStatementError(f"refusing CREATE TRIGGER {name}: not a sync trigger")
        return
    returns = _last_name(node.get("returnType", {}).get("names"))
    if not function.startswith(_SYNC_PREFIX) or returns != "trigger" or node.get("parameters"):
        raise UnsafeStatementError(
            f"refusing CREATE FUNCTION {function}: not a sync trigger function"
        )


def _check_alter_table(node: dict[str, Any]) -> None:
    for item in node.get("cmds", ()):
        command = item["AlterTableCmd"]
        subtype = command.get("subtype")
        if subtype == "AT_AttachPartition" and node.get("objtype") == "OBJECT_INDEX":
            continue  # a partition's index to its partitioned table's (ALTER INDEX only)
        if subtype not in _ALTER_TABLE:
            raise UnsafeStatementError(f"refusing ALTER TABLE … {subtype}")
        if subtype == "AT_DropConstraint" and not command.get("missing_ok", False):
            raise UnsafeStatementError("refusing DROP CONSTRAINT without IF EXISTS")
