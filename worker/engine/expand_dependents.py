"""What the in-place swap carries from the old column to the new one, and its SQL. Pure.

An in-place change (:mod:`worker.engine.expand_swap`) renames the old column away and gives its
name to the shadow column. Objects that use the old column follow its attribute number, not its
name, so without more they would stay on the renamed, retired column: a unique index no longer
enforcing, a view reading a column no one writes. The swap so carries them
(:mod:`worker.engine.expand_dependents_read` reads them into these values first):

- **indexes** (plain, unique, partial, expression, multi-column): an equivalent on the shadow is
  built ``CONCURRENTLY`` before the swap (:func:`prepared_index_sql`); the swap drops the old one
  and renames the new one to the old name — for a unique constraint, ``ADD CONSTRAINT … UNIQUE
  USING INDEX``; foreign keys that reference it are re-added ``NOT VALID`` (validated after);
- **views** that use the column, and the views over them: dropped before the swap and created
  again after it from the definitions read before it, dependents last, with their owner, options,
  grants, comments and ``INSTEAD OF`` triggers;
- **triggers** (``UPDATE OF`` the column, or ``WHEN`` it) and **row-level security policies**:
  re-created from their definitions.

The definitions name the column, so re-created after the renames they use the new column under
the old name. Anything else that uses the column is :attr:`Dependents.unmovable`: the swap is
refused, naming it and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.stream import RawStream
from pglast.visitors import Visitor

from contracts.identifiers import qualified, quote_ident
from worker.engine.expand_parts import derived_name, literal

__all__ = [
    "Dependents",
    "ForeignKey",
    "Grant",
    "Index",
    "Policy",
    "Trigger",
    "View",
    "after_swap",
    "before_swap",
    "prepared_index_sql",
    "prepared_name",
    "refusal",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeignKey:
    """A foreign key that references an index the swap replaces (re-added NOT VALID)."""

    table: str  # qualified, as regclass prints it
    name: str
    definition: str  # pg_get_constraintdef, without NOT VALID


@dataclass(frozen=True, slots=True, kw_only=True)
class Index:
    """An index on the old column (not the primary key's: the swap moves that one itself)."""

    name: str
    definition: str  # pg_get_indexdef
    #: the unique constraint it backs (ADD CONSTRAINT … USING INDEX), None for a plain index
    constraint: str | None = None
    deferrable: bool = False
    deferred: bool = False
    replica_identity: bool = False
    clustered: bool = False
    comment: str | None = None
    constraint_comment: str | None = None
    referenced_by: tuple[ForeignKey, ...] = ()
    #: its tablespace when not the database's default (pg_get_indexdef leaves it out)
    tablespace: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    grantee: str  # a role name, or PUBLIC
    privilege: str
    grantable: bool = False
    column: str | None = None  # a column privilege


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    name: str  # qualified, as regclass prints it
    #: pg_get_viewdef, read before the swap: the column's name then means the new column
    query: str
    options: tuple[str, ...] = ()  # reloptions: check_option=…, security_barrier=…
    owner: str
    grants: tuple[Grant, ...] = ()
    comment: str | None = None
    column_comments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    name: str
    table: str  # qualified: the table, or a view being re-created (INSTEAD OF)
    definition: str  # pg_get_triggerdef
    #: an INSTEAD OF trigger of a re-created view: it goes with the view
    on_view: bool = False
    enabled: str = "O"  # pg_trigger.tgenabled: O, D, R, A
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    name: str
    table: str  # qualified
    command: str  # ALL, SELECT, INSERT, UPDATE, DELETE
    permissive: bool
    roles: tuple[str, ...]  # role names, or PUBLIC
    using: str | None
    check: str | None
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependents:
    """What uses the old column, besides what the swap moves itself (the primary key, the
    foreign keys and CHECKs, the default, sequence or identity)."""

    indexes: tuple[Index, ...] = ()
    #: in dependency order: each view after every view it reads
    views: tuple[View, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    policies: tuple[Policy, ...] = ()
    #: objects the swap cannot carry (pg_describe_object, and why)
    unmovable: tuple[str, ...] = ()


def prepared_name(index: Index) -> str:
    """The name of the equivalent index built on the shadow column before the swap."""
    return derived_name(index.name, "__sh_ix")


class _OnShadow(Visitor):
    """Rewrites every reference to the old column (key, INCLUDE, expression, predicate)."""

    def __init__(self, old: str, shadow: str) -> None:
        self.old, self.shadow = old, shadow

    def visit_ColumnRef(self, parent: object, node: ast.ColumnRef) -> None:
        fields = tuple(node.fields or ())
        if fields and isinstance(fields[-1], ast.String) and fields[-1].sval == self.old:
            node.fields = (*fields[:-1], ast.String(sval=self.shadow))

    def visit_IndexElem(self, parent: object, node: ast.IndexElem) -> None:
        if node.name == self.old:
            node.name = self.shadow


def prepared_index_sql(index: Index, old: str, shadow: str) -> str:
    """``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` the equivalent of ``index`` on ``shadow``."""
    (raw,) = parse_sql(index.definition)
    statement = raw.stmt
    if not isinstance(statement, ast.IndexStmt):
        raise ValueError(f"not an index definition: {index.definition}")
    _OnShadow(old, shadow)(statement)
    statement.idxname = prepared_name(index)
    statement.concurrent = True
    statement.if_not_exists = True
    statement.tableSpace = index.tablespace  # the swap keeps its name: it keeps its place too
    return str(RawStream()(statement))


def refusal(unmovable: tuple[str, ...], table: str, column: str, then: str) -> str:
    """Why the swap of ``table.column`` cannot run, and what to do (``then``: how to go on)."""
    return (
        f"the in-place change of {table}.{column} cannot carry what uses the column: "
        f"{'; '.join(unmovable)}. Drop them (the migration is kept in step meanwhile) and "
        f"create them again after the swap, then {then}"
    )


def before_swap(d: Dependents, schema: str, name: str) -> tuple[str, ...]:
    """In the swap's transaction, before the renames: drop what will be re-created."""
    table = qualified(schema, name)
    out = [f"DROP VIEW {v.name}" for v in reversed(d.views)]  # dependents first
    out += [f"DROP TRIGGER {quote_ident(t.name)} ON {t.table}" for t in d.triggers if not t.on_view]
    out += [f"DROP POLICY {quote_ident(p.name)} ON {p.table}" for p in d.policies]
    for index in d.indexes:
        out += [
            f"ALTER TABLE {fk.table} DROP CONSTRAINT {quote_ident(fk.name)}"
            for fk in index.referenced_by
        ]
        if index.constraint is not None:
            out.append(f"ALTER TABLE {table} DROP CONSTRAINT {quote_ident(index.constraint)}")
        else:
            out.append(f"DROP INDEX {qualified(schema, index.name)}")
    return tuple(out)


def after_swap(d: Dependents, schema: str, name: str) -> tuple[str, ...]:
    """In the swap's transaction, after the renames: the prepared indexes take the old names,
    and the views, triggers and policies are created again."""
    out: list[str] = []
    for index in d.indexes:
        out += _index_back(index, schema, qualified(schema, name))
    for view in d.views:
        out += _view_back(view)
    for trigger in d.triggers:
        out += _trigger_back(trigger)
    for policy in d.policies:
        out += _policy_back(policy)
    return tuple(out)


def _index_back(index: Index, schema: str, table: str) -> list[str]:
    prepared = qualified(schema, prepared_name(index))
    if index.constraint is None:
        out = [f"ALTER INDEX {prepared} RENAME TO {quote_ident(index.name)}"]
    else:
        timing = ""
        if index.deferrable:
            timing = " DEFERRABLE INITIALLY " + ("DEFERRED" if index.deferred else "IMMEDIATE")
        out = [
            f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(index.constraint)} "
            f"UNIQUE USING INDEX {quote_ident(prepared_name(index))}{timing}"
        ]
    final = index.constraint or index.name  # USING INDEX names the index after the constraint
    name = qualified(schema, final)
    if index.replica_identity:
        out.append(f"ALTER TABLE {table} REPLICA IDENTITY USING INDEX {quote_ident(final)}")
    if index.clustered:
        out.append(f"ALTER TABLE {table} CLUSTER ON {quote_ident(final)}")
    if index.comment is not None:
        out.append(f"COMMENT ON INDEX {name} IS {literal(index.comment)}")
    if index.constraint is not None and index.constraint_comment is not None:
        out.append(
            f"COMMENT ON CONSTRAINT {quote_ident(index.constraint)} ON {table} "
            f"IS {literal(index.constraint_comment)}"
        )
    out += [
        f"ALTER TABLE {fk.table} ADD CONSTRAINT {quote_ident(fk.name)} {fk.definition} NOT VALID"
        for fk in index.referenced_by
    ]
    return out


def _view_back(view: View) -> list[str]:
    options = f" WITH ({', '.join(view.options)})" if view.options else ""
    out = [f"CREATE VIEW {view.name}{options} AS {view.query.strip().rstrip(';')}"]
    out.append(f"ALTER VIEW {view.name} OWNER TO {_role(view.owner)}")
    for grant in view.grants:
        if grant.grantee == view.owner and grant.column is None:
            continue  # the owner's own privileges come with the ownership
        column = f" ({quote_ident(grant.column)})" if grant.column is not None else ""
        option = " WITH GRANT OPTION" if grant.grantable else ""
        out.append(
            f"GRANT {grant.privilege}{column} ON {view.name} TO {_role(grant.grantee)}{option}"
        )
    if view.comment is not None:
        out.append(f"COMMENT ON VIEW {view.name} IS {literal(view.comment)}")
    out += [
        f"COMMENT ON COLUMN {view.name}.{quote_ident(column)} IS {literal(text)}"
        for column, text in view.column_comments
    ]
    return out


def _trigger_back(trigger: Trigger) -> list[str]:
    out = [trigger.definition]
    switch = {"D": "DISABLE TRIGGER", "R": "ENABLE REPLICA TRIGGER", "A": "ENABLE ALWAYS TRIGGER"}
    if trigger.enabled in switch:
        out.append(
            f"ALTER TABLE {trigger.table} {switch[trigger.enabled]} {quote_ident(trigger.name)}"
        )
    if trigger.comment is not None:
        out.append(
            f"COMMENT ON TRIGGER {quote_ident(trigger.name)} ON {trigger.table} "
            f"IS {literal(trigger.comment)}"
        )
    return out


def _policy_back(policy: Policy) -> list[str]:
    kind = "PERMISSIVE" if policy.permissive else "RESTRICTIVE"
    roles = ", ".join(_role(r) for r in policy.roles) or "PUBLIC"
    sql = (
        f"CREATE POLICY {quote_ident(policy.name)} ON {policy.table} AS {kind} "
        f"FOR {policy.command} TO {roles}"
    )
    if policy.using is not None:
        sql += f" USING ({policy.using})"
    if policy.check is not None:
        sql += f" WITH CHECK ({policy.check})"
    out = [sql]
    if policy.comment is not None:
        out.append(
            f"COMMENT ON POLICY {quote_ident(policy.name)} ON {policy.table} "
            f"IS {literal(policy.comment)}"
        )
    return out


def _role(name: str) -> str:
    return "PUBLIC" if name == "PUBLIC" else quote_ident(name)
