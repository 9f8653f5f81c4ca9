"""Reading what uses a column about to be swapped in place into
:class:`~worker.engine.expand_dependents.Dependents` (I/O: a few catalog queries).

Read twice: before the expand (the heal refuses a change whose dependents the swap could not
carry, before anything runs), and in the swap's own transaction, under the table's lock, right
before the renames (what is re-created is what exists then). Definitions come from PostgreSQL's
own deparsers (``pg_get_indexdef``, ``pg_get_viewdef``, ``pg_get_triggerdef``, ``pg_get_expr``),
read on an engine connection (``search_path`` is ``pg_catalog``: every name comes qualified).
"""

from __future__ import annotations

import json
from typing import Any

from worker.engine.connection import Connection
from worker.engine.expand_dependents import (
    Dependents,
    ForeignKey,
    Grant,
    Index,
    Policy,
    Trigger,
    View,
)

__all__ = ["read_dependents"]

#: $1 = the table (regclass text), $2 = the column's attnum. Indexes on the column (key,
#: INCLUDE, expression or predicate), but the primary key's (the swap moves it itself).
_INDEXES = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indexrelid AS oid,
       i.indisreplident AS replident, i.indisclustered AS clustered,
       obj_description(i.indexrelid, 'pg_class') AS comment,
       k.conname, k.contype::text AS contype, k.condeferrable, k.condeferred,
       obj_description(k.oid, 'pg_constraint') AS con_comment,
       (SELECT spcname::text FROM pg_tablespace WHERE oid = c.reltablespace) AS tablespace
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid
       AND k.contype IN ('p', 'u', 'x')
 WHERE i.indrelid = $1::regclass AND NOT i.indisprimary
   AND ($2 = ANY (i.indkey::int2[]) OR EXISTS (SELECT FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass
          AND d.refobjsubid = $2))
 ORDER BY c.relname"""

#: $1 = the indexes' oids: the foreign keys (of any table) that reference them
_REFERENCING = """
SELECT conindid AS index, conrelid::regclass::text AS tbl, conname,
       regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '') AS def
  FROM pg_constraint WHERE contype = 'f' AND conindid = ANY ($1::oid[])
 ORDER BY 2, 3"""

#: the relations whose rules read the column, then whatever reads those, with their depth
_VIEWS = """
WITH RECURSIVE users (oid, rule, depth) AS (
    SELECT r.ev_class, r.rulename, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.refobjid = $1::regclass AND d.refobjsubid = $2
  UNION
    SELECT r.ev_class, r.rulename, u.depth + 1 FROM users u JOIN pg_depend d
        ON d.refclassid = 'pg_class'::regclass AND d.refobjid = u.oid
       AND d.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> u.oid
     WHERE u.depth < 64
)
SELECT c.oid, c.oid::regclass::text AS name, c.relkind::text AS kind, bool_and(u.rule = '_RETURN')
       AS is_view, max(u.depth) AS depth, pg_get_userbyid(c.relowner) AS owner, c.reloptions,
       CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END AS query,
       obj_description(c.oid, 'pg_class') AS comment,
       (SELECT json_agg(json_build_array(a.attname, col_description(c.oid, a.attnum))
                        ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
           AND col_description(c.oid, a.attnum) IS NOT NULL) AS column_comments,
       (SELECT json_agg(json_build_array(NULL, g.grantee, g.privilege_type, g.is_grantable))
          FROM (SELECT CASE x.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END
                       AS grantee, x.privilege_type, x.is_grantable
                  FROM aclexplode(c.relacl) x ORDER BY 1, 2) g) AS grants,
       (SELECT json_agg(json_build_array(a.attname, CASE x.grantee WHEN 0 THEN 'PUBLIC'
                        ELSE pg_get_userbyid(x.grantee) END, x.privilege_type, x.is_grantable)
                        ORDER BY a.attnum, x.privilege_type)
          FROM pg_attribute a, aclexplode(a.attacl) x
         WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL) AS column_grants
  FROM users u JOIN pg_class c ON c.oid = u.oid
 GROUP BY c.oid ORDER BY max(u.depth), 2"""

#: $1 = the views' oids: what depends on them or their row types besides their own rules, their
#: row (and array) types, the views over them and their triggers (all re-created): what DROP
#: VIEW would refuse, or lose
_VIEW_USERS = """
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS what
  FROM pg_depend d
  LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
  LEFT JOIN pg_trigger t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid
  LEFT JOIN pg_type y ON d.classid = 'pg_type'::regclass AND y.oid = d.objid
 WHERE (d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY ($1::oid[])
        OR d.refclassid = 'pg_type'::regclass AND d.refobjid IN (SELECT reltype FROM pg_class
           WHERE oid = ANY ($1::oid[])))  -- its row type: a function returning it, a column
   AND NOT (r.oid IS NOT NULL AND r.rulename = '_RETURN' AND r.ev_class = ANY ($1::oid[]))
   AND NOT (t.oid IS NOT NULL AND NOT t.tgisinternal AND t.tgconstraint = 0)
   AND NOT (y.oid IS NOT NULL AND (y.typrelid = d.refobjid OR y.typelem = d.refobjid))
 ORDER BY 1"""

#: $1 = the table, $2 = attnum, $3 = the views' oids; the migration's own sync trigger is not
#: among them (it names no column)
_TRIGGERS = """
SELECT t.tgname AS name, t.tgrelid::regclass::text AS tbl, t.tgrelid = ANY ($3::oid[]) AS on_view,
       pg_get_triggerdef(t.oid) AS def, t.tgenabled::text AS enabled, t.tgconstraint <> 0
       AS constraint_trigger, obj_description(t.oid, 'pg_trigger') AS comment,
       pg_describe_object('pg_trigger'::regclass, t.oid, 0) AS what
  FROM pg_trigger t
 WHERE NOT t.tgisinternal AND (t.tgrelid = ANY ($3::oid[]) OR EXISTS (SELECT FROM pg_depend d
        WHERE d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass
          AND d.refobjsubid = $2))
 ORDER BY 3, 2, 1"""

#: policies (on any table) whose expressions read the column
_POLICIES = """
SELECT p.polname AS name, p.polrelid::regclass::text AS tbl, p.polpermissive AS permissive,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       ARRAY(SELECT CASE r WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END
               FROM unnest(p.polroles) AS r ORDER BY 1) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using, pg_get_expr(p.polwithcheck, p.polrelid)
       AS check, obj_description(p.oid, 'pg_policy') AS comment
  FROM pg_policy p
 WHERE EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_policy'::regclass
          AND d.objid = p.oid AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = $1::regclass AND d.refobjsubid = $2)
 ORDER BY 2, 1"""

#: everything else that depends on the column: what neither the swap itself moves (the primary
#: key, foreign keys, CHECKs, NOT NULL, its own default, owned sequence) nor this module carries
_OTHERS = """
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS what
  FROM pg_depend d
  LEFT JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
  LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
  LEFT JOIN pg_attrdef f ON d.classid = 'pg_attrdef'::regclass AND f.oid = d.objid
 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.refobjsubid = $2
   AND d.classid NOT IN ('pg_rewrite'::regclass, 'pg_trigger'::regclass, 'pg_policy'::regclass)
   AND coalesce(k.contype, '') NOT IN ('p', 'f', 'c', 'n', 'u')
   AND coalesce(c.relkind, '') NOT IN ('S', 'i', 'I')
   AND coalesce(f.adnum, 0) <> $2
 ORDER BY 1"""


#: $1 = the table (regclass text), $2 = the shadow column's attnum: the views and rules that
#: read the shadow column (a view made with SELECT * while the migration runs)
_SHADOW_READERS = """
SELECT DISTINCT r.ev_class::regclass::text AS name FROM pg_depend d
  JOIN pg_rewrite r ON r.oid = d.objid
 WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
   AND d.refobjid = $1::regclass AND d.refobjsubid = $2 AND r.ev_class <> $1::regclass
 ORDER BY 1"""


async def _attnum(conn: Connection, table: str, column: str) -> int | None:
    found = await conn.fetchval(
        "SELECT attnum FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2"
        " AND NOT attisdropped",
        table,
        column,
    )
    return None if found is None else int(found)


async def read_dependents(
    conn: Connection, table: str, column: str, shadow: str | None = None
) -> Dependents:
    """What uses ``table.column`` (``table`` qualified) that the swap must carry or cannot;
    with ``shadow`` (the migration's shadow column), also what reads that: the swap renames it,
    so a view selecting it (``SELECT *`` made while the migration runs) cannot be re-created."""
    attnum = await _attnum(conn, table, column)
    if attnum is None:
        return Dependents()
    shadow_attnum = None if shadow is None else await _attnum(conn, table, shadow)
    readers = [] if shadow_attnum is None else await conn.fetch(
        _SHADOW_READERS, table, shadow_attnum
    )  # fmt: skip
    indexes = await conn.fetch(_INDEXES, table, attnum)
    referencing = await conn.fetch(_REFERENCING, [r["oid"] for r in indexes])
    relations = await conn.fetch(_VIEWS, table, attnum)
    oids = [r["oid"] for r in relations]
    view_users = await conn.fetch(_VIEW_USERS, oids) if oids else []
    triggers = await conn.fetch(_TRIGGERS, table, attnum, oids)
    policies = await conn.fetch(_POLICIES, table, attnum)
    others = await conn.fetch(_OTHERS, table, attnum)
    unmovable = [f"{r['what']} (not moved by the swap)" for r in others]
    unmovable += [
        f"view {r['name']} reads the shadow column {shadow} (it selects every column and was "
        f"made after the expand began): create it again naming its columns, without {shadow}"
        for r in readers
    ]
    unmovable += _unmovable_relations(relations)
    unmovable += [f"{r['what']} (uses a re-created view)" for r in view_users]
    unmovable += [
        f"{r['what']} (a constraint trigger)" for r in triggers if r["constraint_trigger"]
    ]
    return Dependents(
        indexes=tuple(_index(r, referencing) for r in indexes if r["contype"] != "x"),  # _OTHERS
        views=tuple(_view(r) for r in relations if r["kind"] == "v" and r["is_view"]),
        triggers=tuple(_trigger(r) for r in triggers if not r["constraint_trigger"]),
        policies=tuple(_policy(r) for r in policies),
        unmovable=tuple(sorted(set(unmovable))),
    )


def _unmovable_relations(rows: list[Any]) -> list[str]:
    out = []
    for r in rows:
        if r["kind"] == "m":
            out.append(f"materialized view {r['name']} (re-creating it would refill it under a "
                       "lock)")  # fmt: skip
        elif not (r["kind"] == "v" and r["is_view"]):
            out.append(f"a rule on {r['name']} (not moved by the swap)")
    return out


def _index(row: Any, referencing: list[Any]) -> Index:
    unique = row["contype"] == "u"
    return Index(
        name=row["name"],
        definition=row["def"],
        constraint=row["conname"] if unique else None,
        deferrable=bool(row["condeferrable"]) if unique else False,
        deferred=bool(row["condeferred"]) if unique else False,
        replica_identity=row["replident"],
        clustered=row["clustered"],
        comment=row["comment"],
        constraint_comment=row["con_comment"] if unique else None,
        tablespace=row["tablespace"],
        referenced_by=tuple(
            ForeignKey(table=r["tbl"], name=r["conname"], definition=r["def"])
            for r in referencing
            if r["index"] == row["oid"]
        ),
    )


def _view(row: Any) -> View:
    grants = [*json.loads(row["grants"] or "[]"), *json.loads(row["column_grants"] or "[]")]
    return View(
        name=row["name"],
        query=row["query"],
        options=tuple(row["reloptions"] or ()),
        owner=row["owner"],
        grants=tuple(
            Grant(column=column, grantee=grantee, privilege=privilege, grantable=grantable)
            for column, grantee, privilege, grantable in grants
        ),
        comment=row["comment"],
        column_comments=tuple(
            (name, text) for name, text in json.loads(row["column_comments"] or "[]")
        ),
    )


def _trigger(row: Any) -> Trigger:
    return Trigger(
        name=row["name"],
        table=row["tbl"],
        definition=row["def"],
        on_view=row["on_view"],
        enabled=row["enabled"],
        comment=row["comment"],
    )


def _policy(row: Any) -> Policy:
    return Policy(
        name=row["name"],
        table=row["tbl"],
        command=row["command"],
        permissive=row["permissive"],
        roles=tuple(row["roles"]),
        using=row["using"],
        check=row["check"],
        comment=row["comment"],
    )
