"""The in-place swap that ends the expand of a widening type change (``int`` → ``bigint``). Pure.

During expand the new values live in a shadow column (``<name>__sh_new``) kept in step by the
trigger. Once it is filled and NOT NULL where needed, one short transaction under
``lock_timeout`` swaps it in: the trigger goes, the old column is renamed ``<name>__sh_old``
(kept, nullable, unused, until contract) and the shadow takes its name, with the old column's
default, sequence (widened, re-owned) or identity (continued), and — for a primary key — the
constraint, rebuilt on a unique index built ``CONCURRENTLY`` beforehand. Foreign keys that
referenced the old key are re-added ``NOT VALID`` in the swap and validated in a later step,
which blocks no writer. The other objects that use the old column — indexes, unique constraints,
views, triggers, policies — are carried around this ``DO`` block by the runner
(:mod:`worker.engine.expand_dependents`, :mod:`worker.engine.backfill_carry`).

The swap reads what it moves (constraint names, default, sequence, identity) from the catalog
while it holds the table's lock, in a ``DO`` block: names come from the catalog through
``format('%I')``, the rest from this module through ``quote_ident`` and literals.
"""

from __future__ import annotations

from contracts.identifiers import qualified, quote_ident
from worker.engine.expand import ColumnMigration
from worker.engine.expand_column_props import carry_properties
from worker.engine.expand_parts import (
    Carry,
    Step,
    derived_name,
    dollar_quoted,
    drop_sync,
    literal,
    physical_column,
    retired_column,
)

__all__ = ["key_index", "steps"]

_INTEGERS = frozenset({"smallint", "integer", "bigint"})


def key_index(m: ColumnMigration) -> str | None:
    """The unique index the new primary key is built on; None when the key does not change."""
    if m.old_column is None or m.old_column not in m.key:
        return None
    return derived_name(m.table, "__sh_pkey")


def steps(m: ColumnMigration) -> tuple[Step, ...]:
    """The index build (for a key), the other indexes' equivalents on the shadow, the swap (which
    also carries the dependents: :mod:`worker.engine.expand_dependents`), and the validation of
    the constraints it re-added NOT VALID."""
    index = key_index(m)
    prepare = Step(
        sql="-- an equivalent on the shadow column of each index on the old one, built "
        "CONCURRENTLY (read from the catalog when the step runs)",
        transactional=False,
        long=True,
        carry=Carry.PREPARE,
    )
    validate = Step(sql=_validate_moved(m), long=True)
    if index is None:
        return (prepare, Step(sql=_swap(m, None), carry=Carry.SWAP), validate)
    table = qualified(m.schema, m.table)
    shadow = physical_column(m)
    columns = ", ".join(quote_ident(shadow if k == m.old_column else k) for k in m.key)
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(m.schema, index)}"
    return (
        Step(
            sql=f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(index)} "
            f"ON {table} ({columns})",
            transactional=False,
            long=True,
            reset=drop,
            carry=Carry.KEY,
        ),
        prepare,
        Step(sql=_swap(m, index), carry=Carry.SWAP),
        validate,
    )


def _swap(m: ColumnMigration, index: str | None) -> str:
    assert m.old_column is not None  # an in-place change has an old column
    table = qualified(m.schema, m.table)
    old, shadow = m.old_column, physical_column(m)
    retired = retired_column(m) or old
    lines = [
        "DECLARE",
        f"  rel regclass := {literal(table)}::regclass;",
        "  fk record; fks text[] := '{}'; stmt text; pk name; dflt text; seq text;",
        "  moved text[] := '{}'; users text;",
        '  ident "char"; next_value bigint; step bigint;',
        "BEGIN",
        "  IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = rel",
        f"      AND attname = {literal(shadow)} AND NOT attisdropped) THEN",
        "    RETURN;  -- swapped already",
        "  END IF;",
        *_refuse_left_behind(table, old, shadow),
        *(f"  {command};" for command in drop_sync(m)),
        "  SELECT pg_get_expr(d.adbin, d.adrelid), a.attidentity INTO dflt, ident",
        "    FROM pg_attribute a LEFT JOIN pg_attrdef d",
        "      ON d.adrelid = a.attrelid AND d.adnum = a.attnum",
        f"    WHERE a.attrelid = rel AND a.attname = {literal(old)};",
        f"  seq := pg_get_serial_sequence(rel::text, {literal(old)});",
    ]
    if index is not None:
        lines += _drop_key()
    lines += _take_constraints(old)
    lines += _move_column(m, table, old, shadow, retired)
    lines += _not_null_name(m.table, old, shadow)
    if index is not None:
        lines += [
            "  EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I',",
            f"    rel, pk, {literal(index)});",
            "  FOREACH stmt IN ARRAY fks LOOP EXECUTE stmt; END LOOP;",
        ]
    lines += ["  FOREACH stmt IN ARRAY moved LOOP EXECUTE stmt; END LOOP;", "END"]
    # the column's own privileges, settings, comment and labels stay with its attribute number
    # (the retired column) unless given to the one that took its name (it only adds: idempotent)
    carried = carry_properties(table, retired, old)
    return f"{_do(chr(10).join(lines))}; {carried}"


def _drop_key() -> list[str]:
    """Drop the primary key, first keeping the foreign keys that use it (re-added NOT VALID)."""
    return [
        "  SELECT conname INTO pk FROM pg_constraint WHERE conrelid = rel AND contype = 'p';",
        "  FOR fk IN SELECT c.conrelid::regclass AS tbl, c.conname,",
        "        regexp_replace(pg_get_constraintdef(c.oid), ' NOT VALID$', '') AS def",
        "      FROM pg_constraint c JOIN pg_constraint p",
        "        ON p.conrelid = rel AND p.contype = 'p' AND c.conindid = p.conindid",
        "      WHERE c.confrelid = rel AND c.contype = 'f' ORDER BY 1, 2 LOOP",
        "    fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID',",
        "      fk.tbl, fk.conname, fk.def);",
        "  END LOOP;",
        "  EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I CASCADE', rel, pk);",
    ]


def _refuse_left_behind(table: str, old: str, shadow: str) -> list[str]:
    """Stop before anything changes when objects still use the old column once the runner has
    dropped the dependents it re-creates (:mod:`worker.engine.expand_dependents`): they would
    be left on it once no one writes it. The runner refuses these itself, by name; this is the
    last guard, against one made between its reading and the renames."""
    hint = f"drop them, or re-create them on {shadow} (the column that takes the name), then retry"
    return [
        "  SELECT string_agg(pg_describe_object(d.classid, d.objid, d.objsubid), ', ' ORDER BY 1)",
        "    INTO users FROM pg_depend d",
        "    LEFT JOIN pg_constraint c",
        "      ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid",
        "    LEFT JOIN pg_class k ON d.classid = 'pg_class'::regclass AND k.oid = d.objid",
        "    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = rel AND d.refobjsubid =",
        "        (SELECT attnum FROM pg_attribute WHERE attrelid = rel",
        f"          AND attname = {literal(old)})",
        "      AND d.classid <> 'pg_attrdef'::regclass AND coalesce(c.contype, '') NOT IN",
        "        ('p', 'f', 'c', 'n') AND coalesce(k.relkind, '') <> 'S';",
        "  IF users IS NOT NULL THEN",
        "    RAISE EXCEPTION 'schemaheal: % use %.%, which the swap would leave behind',",
        f"      users, {literal(table)}, {literal(old)}",
        f"      USING HINT = {literal(hint)};",
        "  END IF;",
    ]


def _take_constraints(old: str) -> list[str]:
    """The table's own foreign keys and CHECKs on the old column: dropped before the renames,
    their definitions (which name the column) kept to be re-added NOT VALID on the new one."""
    return [
        "  FOR fk IN SELECT conname, regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '')",
        "        AS def FROM pg_constraint WHERE conrelid = rel AND contype IN ('f', 'c')",
        # not the keys PostgreSQL adds per partition of a partitioned table a foreign key
        # points at: they go with the declared key and come back with it
        "        AND conparentid = 0",
        "        AND conkey @> ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = rel",
        f"          AND attname = {literal(old)})] ORDER BY conname LOOP",
        "    moved := moved || format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID',",
        "      rel, fk.conname, fk.def);",
        "    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', rel, fk.conname);",
        "  END LOOP;",
    ]


def _move_column(m: ColumnMigration, table: str, old: str, shadow: str, retired: str) -> list[str]:
    """The old column's default, sequence or identity moves to the shadow, which takes its
    name; the old one, renamed, loses NOT NULL (no one writes it any more)."""
    q_old = quote_ident(old)
    lines = [
        "  IF dflt IS NOT NULL THEN",
        f"    ALTER TABLE {table} ALTER COLUMN {q_old} DROP DEFAULT;",
        "  END IF;",
        "  IF ident <> '' THEN",
        "    SELECT COALESCE(pg_sequence_last_value(seq::regclass) + s.seqincrement,",
        "        s.seqstart), s.seqincrement INTO next_value, step",
        "      FROM pg_sequence s WHERE s.seqrelid = seq::regclass;",
        f"    ALTER TABLE {table} ALTER COLUMN {q_old} DROP IDENTITY;",
        "  END IF;",
        f"  ALTER TABLE {table} ALTER COLUMN {q_old} DROP NOT NULL;",
        f"  ALTER TABLE {table} RENAME COLUMN {q_old} TO {quote_ident(retired)};",
        f"  ALTER TABLE {table} RENAME COLUMN {quote_ident(shadow)} TO {q_old};",
        "  IF ident <> '' THEN",
        "    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I ADD GENERATED %s AS IDENTITY '",
        "      '(START WITH %s INCREMENT BY %s)', rel,",
        f"      {literal(old)}, CASE ident WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END,",
        "      next_value, step);",
        "  ELSIF dflt IS NOT NULL THEN",
        f"    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', rel, {literal(old)},",
        "      dflt);",
        "  END IF;",
        "  IF seq IS NOT NULL AND ident = '' THEN",
        f"    EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', seq, rel, {literal(old)});",
    ]
    if m.new_type in _INTEGERS:  # serial's sequence is AS integer: it must count as far
        lines.append(f"    EXECUTE format('ALTER SEQUENCE %s AS {m.new_type}', seq);")
    return [*lines, "  END IF;"]


def _not_null_name(table: str, old: str, shadow: str) -> list[str]:
    """PostgreSQL 18 names NOT NULL constraints after their column: the one the shadow got
    takes the name the old column's had (dropped with its NOT NULL). None before 18."""
    was, now = f"{table}_{shadow}_not_null", f"{table}_{old}_not_null"
    if len(was.encode()) > 63 or len(now.encode()) > 63:
        return []  # PostgreSQL cut these names its own way: left as they are
    return [
        "  FOR stmt IN SELECT format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', rel, conname,",
        f"      {literal(now)}) FROM pg_constraint WHERE conrelid = rel AND contype = 'n'",
        f"      AND conname = {literal(was)} AND NOT EXISTS (SELECT FROM pg_constraint",
        f"        WHERE conrelid = rel AND conname = {literal(now)}) LOOP",
        "    EXECUTE stmt;",
        "  END LOOP;",
    ]


def _validate_moved(m: ColumnMigration) -> str:
    """Validate what the swap re-added NOT VALID — the foreign keys referencing the table and
    the table's own foreign keys and CHECKs — under locks that block no writer. One that fails
    stays NOT VALID (as it may have been before) with a warning, rather than stopping the
    migration."""
    table = qualified(m.schema, m.table)
    body = "\n".join(
        [
            "DECLARE c record;",
            "BEGIN",
            "  FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint",
            f"      WHERE (confrelid = {literal(table)}::regclass AND contype = 'f'",
            f"          OR conrelid = {literal(table)}::regclass AND contype IN ('f', 'c')",
            "            AND conparentid = 0)",
            "        AND NOT convalidated ORDER BY 1, 2 LOOP",
            "    BEGIN",
            "      EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', c.tbl, c.conname);",
            "    EXCEPTION WHEN foreign_key_violation OR check_violation THEN",
            "      RAISE WARNING 'schemaheal: constraint % on % stays NOT VALID: %',",
            "        c.conname, c.tbl, SQLERRM;",
            "    END;",
            "  END LOOP;",
            "END",
        ]
    )
    return _do(body)


def _do(body: str) -> str:
    return f"DO {dollar_quoted(body)}"
