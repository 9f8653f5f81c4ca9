"""What a column has of its own, carried to the column that replaces it. Pure.

PostgreSQL keeps some properties per attribute number, not per name: column privileges
(``GRANT SELECT (col)``), the statistics target, attribute options (``n_distinct``), storage,
compression, the comment and security labels. A column that replaces another — the shadow an
in-place swap gives the old name (:mod:`worker.engine.expand_swap`), the new column of a rename —
starts with none of them: a role granted only the old column would lose access to its data.

:func:`carry_properties` is one ``DO`` block that gives the new column what the old one has,
read from the catalog when it runs (in the transaction of the expand, the swap or the contract),
never from the plan. It only adds: privileges are granted (never revoked); the statistics
target, each attribute option (``n_distinct``, ``n_distinct_inherited``: those ``ALTER COLUMN …
SET`` takes; others a server keeps there are its own), storage, compression, comment and each
provider's label are set only where the new column has none of its own (the manifest's comment,
or a setting made on the new column, is kept). So it is idempotent, and run again at contract it
adds what was granted on the old column meanwhile. Storage and compression go only to a type
that can have them (``bigint`` is stored inline: it has neither). A label whose provider is not
loaded cannot be set: the block fails, naming it and what to do, rather than lose it.
What the new column's type cannot have (storage or compression on a type stored inline) is
named in a ``WARNING``, which the worker logs (:mod:`worker.engine.connection`).
"""

from __future__ import annotations

import re

from contracts.identifiers import quote_ident
from worker.engine.expand_parts import dollar_quoted, literal

__all__ = ["CARRIED", "carry_properties", "is_carry_block"]

#: what the block carries, in words (``plan`` and the docs say it so)
CARRIED = (
    "column privileges, statistics target, attribute options, storage, compression, "
    "comment (when it has none) and security labels"
)

#: the commands that give ``target`` what ``source`` has, read from the catalog as the block
#: runs (``unfit``: not a command but what the target's type cannot have, to warn of)
_COMMANDS = """      WITH s AS (SELECT a.attnum AS num, a.attacl,
                        coalesce(a.attstattarget::int, -1) AS stat, a.attoptions,
                        a.attstorage::text AS storage, a.attcompression::text AS comp,
                        t.typstorage::text AS plain_storage
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                  WHERE a.attrelid = part AND a.attname = source AND NOT a.attisdropped),
           d AS (SELECT a.attnum AS num, coalesce(a.attstattarget::int, -1) AS stat,
                        a.attoptions, a.attstorage::text AS storage,
                        a.attcompression::text AS comp, t.typstorage::text AS plain_storage
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                  WHERE a.attrelid = part AND a.attname = target AND NOT a.attisdropped),
           n AS (SELECT CASE s.storage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
                          WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END AS storage,
                        CASE s.comp WHEN 'l' THEN 'lz4' ELSE 'pglz' END AS comp FROM s)
      SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', x.privilege_type, target, part,
               CASE x.grantee WHEN 0 THEN 'PUBLIC'
                    ELSE quote_ident(pg_get_userbyid(x.grantee)) END,
               CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), false
        FROM s, d, aclexplode(s.attacl) AS x
      UNION ALL
      SELECT format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS %s', part, target, s.stat),
             false
        FROM s, d WHERE s.stat >= 0 AND d.stat < 0
      UNION ALL
      SELECT format('ALTER TABLE %s ALTER COLUMN %I SET (%s)', part, target, o), false
        FROM s, d, unnest(s.attoptions) AS o
       WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited')
         AND split_part(o, '=', 1) <> ALL (SELECT split_part(p, '=', 1)
                                             FROM unnest(d.attoptions) AS p)
      UNION ALL
      SELECT CASE WHEN d.plain_storage = 'p' THEN 'storage ' || n.storage
             ELSE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE %s', part, target,
                         n.storage) END, d.plain_storage = 'p'
        FROM s, d, n WHERE s.storage <> s.plain_storage AND d.storage = d.plain_storage
      UNION ALL
      SELECT CASE WHEN d.plain_storage = 'p' THEN 'compression ' || n.comp
             ELSE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION %s', part, target,
                         n.comp) END, d.plain_storage = 'p'
        FROM s, d, n WHERE s.comp <> '' AND d.comp = ''
      UNION ALL
      SELECT format('COMMENT ON COLUMN %s.%I IS %L', part, target,
                    col_description(part, s.num)), false
        FROM s, d WHERE col_description(part, d.num) IS NULL
         AND col_description(part, s.num) IS NOT NULL
      UNION ALL
      SELECT format('SECURITY LABEL FOR %I ON COLUMN %s.%I IS %L', l.provider, part, target,
                    l.label), false
        FROM s, d, pg_seclabel AS l
       WHERE l.classoid = 'pg_class'::regclass AND l.objoid = part AND l.objsubid = s.num
         AND NOT EXISTS (SELECT FROM pg_seclabel AS e WHERE e.classoid = l.classoid
                           AND e.objoid = part AND e.objsubid = d.num
                           AND e.provider = l.provider)"""

#: a property the new column's type cannot have is named in a WARNING (the worker logs it); a
#: label of a provider that is not loaded cannot be set (SQLSTATE 22023): say which, and how
_RUN = """      IF r.unfit THEN
        RAISE WARNING 'schemaheal: %.% has %, which %.% cannot have (its type is stored '
          'inline): not carried', part, source, r.command, part, target;
        CONTINUE;
      END IF;
      BEGIN
        EXECUTE r.command;
      EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'schemaheal: %.% cannot be given what %.% has (%): %', part, target,
          part, source, r.command, SQLERRM USING HINT = 'load the security label provider in '
          || 'the server (shared_preload_libraries), then retry; or remove the label from '
          || source;
      END;"""


def carry_properties(table: str, source: str, target: str) -> str:
    """A ``DO`` block giving ``target`` what ``source`` (both columns of ``table``, qualified)
    has of its own; nothing when either column is not there (contracted, or swapped already)."""
    return f"DO {dollar_quoted(_body(table, source, target))}"


_LITERAL = r"'((?:[^']|'')*)'"
_ARGUMENTS = re.compile(
    rf"^  rel regclass := {_LITERAL}::regclass;\n  source text := {_LITERAL};\n"
    rf"  target text := {_LITERAL};$",
    re.MULTILINE,
)


def is_carry_block(body: str) -> bool:
    """Whether ``body`` (a ``DO`` block's code) is exactly one :func:`carry_properties` makes:
    the heal's guard (:mod:`worker.engine.guard`) runs no other ``DO``."""
    found = _ARGUMENTS.search(body)
    if found is None:
        return False
    table, source, target = (value.replace("''", "'") for value in found.groups())
    return body.strip("\n") == _body(table, source, target)


def _body(table: str, source: str, target: str) -> str:
    return "\n".join(
        [
            f"-- give {_shown(target)} what {_shown(source)} has of its own: {CARRIED}",
            "DECLARE",
            f"  rel regclass := {literal(table)}::regclass;",
            f"  source text := {literal(source)};",
            f"  target text := {literal(target)};",
            "  part regclass;",
            "  r record;",
            "BEGIN",
            "  -- the table, then each partition (a partition's own settings and grants)",
            "  FOR part IN SELECT t.relid FROM (SELECT rel AS relid, 0 AS level UNION ALL",
            "      SELECT relid, level FROM pg_partition_tree(rel) WHERE level > 0) AS t",
            "      ORDER BY t.level, t.relid::text LOOP",
            "    FOR r IN SELECT c.command, c.unfit FROM (",
            _COMMANDS,
            "    ) AS c (command, unfit) LOOP",
            _RUN,
            "    END LOOP;",
            "  END LOOP;",
            "END",
        ]
    )


def _shown(name: str) -> str:
    """``name`` quoted for the block's first line, a comment: a line break in it would end the
    comment and make the rest of the name code."""
    return "".join(c if c.isprintable() else "?" for c in quote_ident(name))
