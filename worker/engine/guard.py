"""Defence in depth: every generated statement is parsed again before it runs.

The renderer writes SQL only from validated values, quoting every identifier and qualifying
every name. Still, right before execution each statement is re-parsed with PostgreSQL's grammar
(pglast) and must be exactly one statement of a kind a plan may contain. ``DROP TABLE``,
``DELETE``, ``TRUNCATE``, ``DO``, a second statement smuggled in: refused, whatever produced them.
"""

from __future__ import annotations

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError

from worker.errors import PermanentError

_KINDS = (
    ast.CreateSchemaStmt, ast.CreateExtensionStmt, ast.CreateEnumStmt, ast.AlterEnumStmt,
    ast.CreateSeqStmt, ast.AlterSeqStmt, ast.CreateStmt, ast.IndexStmt, ast.AlterTableStmt,
    ast.CommentStmt, ast.DropStmt, ast.VariableSetStmt, ast.CreateFunctionStmt, ast.CreateTrigStmt,
)  # fmt: skip
#: the one function and trigger kind a plan creates: an online migration's sync trigger
_SYNC_PREFIX = "schemaheal_sync_"
_T = enums.AlterTableType
_ALTER_TABLE = frozenset({
    _T.AT_AddColumn, _T.AT_ColumnDefault, _T.AT_DropNotNull, _T.AT_SetNotNull,
    _T.AT_AlterColumnType, _T.AT_AddConstraint, _T.AT_ValidateConstraint,
    _T.AT_DropConstraint,  # only IF EXISTS, of a constraint this heal just added (see below)
})  # fmt: skip


class UnsafeStatementError(PermanentError):
    code = "unsafe-statement"


def check(sql: str) -> None:
    """Raise :class:`UnsafeStatementError` unless ``sql`` is one statement a plan may contain."""
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        raise UnsafeStatementError(
            f"refusing to run a statement that does not parse: {exc}"
        ) from None
    if len(statements) != 1:
        raise UnsafeStatementError(f"refusing to run {len(statements)} statements as one")
    node = statements[0].stmt
    if not isinstance(node, _KINDS):
        raise UnsafeStatementError(f"refusing to run a {type(node).__name__}: not part of a plan")
    if isinstance(node, (ast.CreateFunctionStmt, ast.CreateTrigStmt)):
        _check_sync(node)
    if isinstance(node, ast.AlterTableStmt):
        for command in node.cmds or ():
            if command.subtype not in _ALTER_TABLE:
                raise UnsafeStatementError(f"refusing ALTER TABLE … {command.subtype.name}")
            if command.subtype == _T.AT_DropConstraint and not command.missing_ok:
                raise UnsafeStatementError("refusing DROP CONSTRAINT without IF EXISTS")
    # the only DROP a plan has: an INVALID index left by a failed concurrent build
    index_drop = isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_INDEX
    if isinstance(node, ast.DropStmt) and not (index_drop and node.concurrent):
        raise UnsafeStatementError("refusing a DROP other than DROP INDEX CONCURRENTLY")
    if isinstance(node, ast.VariableSetStmt) and node.name not in (
        "lock_timeout",
        "statement_timeout",
    ):
        raise UnsafeStatementError(f"refusing to SET {node.name}")


def _check_sync(node: ast.CreateFunctionStmt | ast.CreateTrigStmt) -> None:
    """Only an online migration's sync trigger: a row trigger calling a function of its name."""
    if isinstance(node, ast.CreateTrigStmt):
        function = node.funcname[-1].sval if node.funcname else ""
        if not (node.trigname or "").startswith(_SYNC_PREFIX) or function != node.trigname:
            raise UnsafeStatementError(
                f"refusing CREATE TRIGGER {node.trigname}: not a sync trigger"
            )
        return
    name = node.funcname[-1].sval if node.funcname else ""
    returns = node.returnType.names[-1].sval if node.returnType and node.returnType.names else ""
    if not name.startswith(_SYNC_PREFIX) or returns != "trigger" or node.parameters:
        raise UnsafeStatementError(f"refusing CREATE FUNCTION {name}: not a sync trigger function")
