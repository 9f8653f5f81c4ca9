"""The plans for a partitioned table that exists (pure): an index through sub-partitions, a
primary key or unique constraint and a foreign key leaf by leaf, what a stopped heal left done
or invalid, the hazards of each statement, and which unique keys are refused and why. The real
PostgreSQL side: ``test_partitioned_keys.py``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.hazards import Hazard
from worker.engine.plan import make_plan
from worker.engine.plan_partitioned import (
    failure_advice,
    key_refusals,
    partitioned_foreign_key,
    partitioned_index,
    partitioned_key,
)

UP = ("public", "events")
SUB = ("public", "events_2")
TREE = m.Table(
    schema="public", name="events", columns=(), partitioned=True, partition_key=("id",),
    partition_tree=(
        m.Partition(schema="public", name="events_1", parent=UP),
        m.Partition(schema="public", name="events_2", parent=UP, partitioned=True, key=("kind",)),
        m.Partition(schema="public", name="events_2a", parent=SUB),
        m.Partition(schema="archive", name="Events 2b", parent=SUB),
    ),
)  # fmt: skip
#: TREE with a foreign table under events_2 and one under events
FOREIGN = replace(TREE, partition_tree=(
    *TREE.partition_tree,
    m.Partition(schema="public", name="events_2f", parent=SUB, foreign=True),
    m.Partition(schema="remote", name="events_f", parent=UP, foreign=True),
))  # fmt: skip
UNIQUE = m.UniqueConstraint(name="events_key", columns=("id", "kind"))
FK = m.ForeignKey(name="events_kind_fkey", columns=("kind",), ref_schema="public",
                  ref_table="kinds", ref_columns=("id",))  # fmt: skip


def _sql(steps: list[tuple[object, str, str | None]]) -> list[str]:
    return [sql for _, sql, _ in steps]


def test_an_index_is_built_through_a_sub_partition() -> None:
    index = m.Index(name="events_name_idx", elements=(m.IndexElement(column="name"),))
    using = "USING btree (name)"
    assert _sql(partitioned_index(TREE, index)) == [
        f"CREATE INDEX IF NOT EXISTS events_name_idx ON ONLY public.events {using}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS events_1_events_name_idx_p ON public.events_1 {using}",
        "ALTER INDEX public.events_name_idx ATTACH PARTITION public.events_1_events_name_idx_p",
        f"CREATE INDEX IF NOT EXISTS events_2_events_name_idx_p ON ONLY public.events_2 {using}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS events_2a_events_name_idx_p ON public.events_2a {using}",
        "ALTER INDEX public.events_2_events_name_idx_p ATTACH PARTITION public.events_2a_events_name_idx_p",
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "Events 2b_events_name_idx_p" ON archive."Events 2b" {using}',
        'ALTER INDEX public.events_2_events_name_idx_p ATTACH PARTITION archive."Events 2b_events_name_idx_p"',
        "ALTER INDEX public.events_name_idx ATTACH PARTITION public.events_2_events_name_idx_p",
    ]  # fmt: skip


def test_an_index_skips_foreign_leaves_and_the_parent_adopts_the_others() -> None:
    """With a foreign partition an ON ONLY index could never be made valid: each other leaf's
    copy is built, then a plain CREATE INDEX on the parent adopts them."""
    index = m.Index(name="events_name_idx", elements=(m.IndexElement(column="name"),))
    tree = replace(FOREIGN, partition_tree=tuple(
        replace(p, invalid_indexes=frozenset({"events_2a_events_name_idx_p"}))
        if p.name == "events_2a" else p for p in FOREIGN.partition_tree
    ))  # fmt: skip
    using = "USING btree (name)"
    steps = partitioned_index(tree, index)
    assert _sql(steps) == [
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS events_1_events_name_idx_p ON public.events_1 {using}",
        "DROP INDEX CONCURRENTLY IF EXISTS public.events_2a_events_name_idx_p",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS events_2a_events_name_idx_p ON public.events_2a {using}",
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "Events 2b_events_name_idx_p" ON archive."Events 2b" {using}',
        f"CREATE INDEX IF NOT EXISTS events_name_idx ON public.events {using}",
    ]  # fmt: skip
    assert [kind.value for kind, _, _ in steps] == [
        "build", "drop-invalid", "build", "build", "parent"
    ]  # fmt: skip


def test_a_unique_constraint_is_made_on_each_leaf_then_the_parent() -> None:
    keys = "USING btree (id, kind) NULLS NOT DISTINCT"
    change = ch.AddKeyConstraint(table=TREE, constraint=replace(UNIQUE, nulls_not_distinct=True))
    steps = partitioned_key(change)
    assert _sql(steps) == [
        f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_1_events_key_p ON public.events_1 {keys}",
        "ALTER TABLE public.events_1 ADD CONSTRAINT events_1_events_key_p UNIQUE USING INDEX events_1_events_key_p",
        f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_2a_events_key_p ON public.events_2a {keys}",
        "ALTER TABLE public.events_2a ADD CONSTRAINT events_2a_events_key_p UNIQUE USING INDEX events_2a_events_key_p",
        f'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "Events 2b_events_key_p" ON archive."Events 2b" {keys}',
        'ALTER TABLE archive."Events 2b" ADD CONSTRAINT "Events 2b_events_key_p" UNIQUE USING INDEX "Events 2b_events_key_p"',
        "ALTER TABLE public.events ADD CONSTRAINT events_key UNIQUE NULLS NOT DISTINCT (id, kind)",
    ]  # fmt: skip
    assert steps[0][2] == "DROP INDEX CONCURRENTLY IF EXISTS public.events_1_events_key_p"


def test_a_primary_key_stopped_half_way_skips_what_is_done_and_drops_what_is_invalid() -> None:
    done, invalid = TREE.partition_tree[0], TREE.partition_tree[2]
    tree = replace(TREE, partition_tree=(
        replace(done, constraints=frozenset({"events_1_events_pkey_p"})),
        TREE.partition_tree[1],
        replace(invalid, invalid_indexes=frozenset({"events_2a_events_pkey_p"})),
    ))  # fmt: skip
    key = m.PrimaryKey(name="events_pkey", columns=("id", "kind"))
    assert _sql(partitioned_key(ch.AddKeyConstraint(table=tree, constraint=key))) == [
        "DROP INDEX CONCURRENTLY IF EXISTS public.events_2a_events_pkey_p",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_2a_events_pkey_p ON public.events_2a USING btree (id, kind)",
        "ALTER TABLE public.events_2a ADD CONSTRAINT events_2a_events_pkey_p PRIMARY KEY USING INDEX events_2a_events_pkey_p",
        "ALTER TABLE public.events ADD CONSTRAINT events_pkey PRIMARY KEY (id, kind)",
    ]  # fmt: skip


def test_a_foreign_key_is_validated_leaf_by_leaf_then_added_to_the_parent() -> None:
    fk = "CONSTRAINT events_kind_fkey FOREIGN KEY (kind) REFERENCES public.kinds (id)"
    added = frozenset({"events_kind_fkey"})
    done = replace(TREE.partition_tree[0], constraints=added, unvalidated=added)
    valid = replace(TREE.partition_tree[2], constraints=added)
    tree = replace(TREE, partition_tree=(done, TREE.partition_tree[1], valid,
                                         TREE.partition_tree[3]))  # fmt: skip
    assert _sql(partitioned_foreign_key(tree, FK)) == [
        "ALTER TABLE public.events_1 VALIDATE CONSTRAINT events_kind_fkey",  # added before
        # events_2a: added and validated before
        f'ALTER TABLE archive."Events 2b" ADD {fk} NOT VALID',
        'ALTER TABLE archive."Events 2b" VALIDATE CONSTRAINT events_kind_fkey',
        f"ALTER TABLE public.events ADD {fk}",
    ]  # fmt: skip
    tree = replace(TREE, partition_tree=(done, *TREE.partition_tree[1:]))
    steps = partitioned_foreign_key(tree, FK)
    assert _sql(steps) == [
        "ALTER TABLE public.events_1 VALIDATE CONSTRAINT events_kind_fkey",  # added before
        f"ALTER TABLE public.events_2a ADD {fk} NOT VALID",
        "ALTER TABLE public.events_2a VALIDATE CONSTRAINT events_kind_fkey",
        f'ALTER TABLE archive."Events 2b" ADD {fk} NOT VALID',
        'ALTER TABLE archive."Events 2b" VALIDATE CONSTRAINT events_kind_fkey',
        f"ALTER TABLE public.events ADD {fk}",
    ]  # fmt: skip
    assert steps[2][2] == "ALTER TABLE public.events_2a DROP CONSTRAINT IF EXISTS events_kind_fkey"


def test_only_builds_and_validations_read_data_and_each_runs_alone() -> None:
    plan = make_plan((ch.AddKeyConstraint(table=TREE, constraint=UNIQUE),
                      ch.AddForeignKey(table=TREE, foreign_key=FK)))  # fmt: skip
    for s in plan.statements:
        if s.sql.startswith("CREATE UNIQUE INDEX CONCURRENTLY"):
            assert not s.transactional and s.cleanup_sql is not None
            assert s.hazards == (Hazard.INDEX_BUILD, Hazard.MAY_FAIL_ON_EXISTING_DATA)
        elif "VALIDATE" in s.sql:
            assert s.transactional and s.cleanup_sql and "DROP CONSTRAINT" in s.cleanup_sql
            assert s.hazards == (Hazard.VALIDATION_SCAN, Hazard.MAY_FAIL_ON_EXISTING_DATA)
        else:
            assert s.transactional and s.hazards == (Hazard.STRONG_LOCK,), s.sql
    assert len({s.group for s in plan.statements}) == len(plan.statements)  # each its own


def _index(*columns: str | None, unique: bool = True) -> m.Index:
    elements = tuple(m.IndexElement(column=c, expression=None if c else "lower(name)")
                     for c in columns)  # fmt: skip
    return m.Index(name="events_idx", unique=unique, elements=elements)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (ch.AddIndex(table=TREE, index=_index("id", "kind")), None),
        (ch.AddIndex(table=TREE, index=_index("name", unique=False)), None),
        (ch.AddIndex(table=TREE, index=_index("name")), "public.events; it lacks id"),
        (ch.AddIndex(table=TREE, index=_index("id", None)), "public.events_2; it lacks kind"),
        (ch.AddKeyConstraint(table=TREE, constraint=m.PrimaryKey(name="k", columns=("id",))),
         "primary key k of public.events cannot be made"),
        (ch.AddKeyConstraint(table=TREE, constraint=UNIQUE), None),
        (ch.AddKeyConstraint(table=TREE, constraint=UNIQUE, index_exists=True),
         "Drop the index events_key"),
        (ch.AddKeyConstraint(table=replace(TREE, partition_key=(None,)), constraint=UNIQUE),
         "the partition key of public.events has an expression"),
        (ch.AddKeyConstraint(table=replace(TREE, partitioned=False), constraint=UNIQUE), None),
        (ch.AddKeyConstraint(table=FOREIGN, constraint=UNIQUE),
         "its partitions public.events_2f, remote.events_f are foreign tables, and PostgreSQL "
         "cannot make a unique index or constraint on a foreign table nor on a partitioned "
         "table that has one. Leave it out of the manifest (a plain index can be made), or "
         "detach them first (ALTER TABLE public.events_2 DETACH PARTITION public.events_2f; "
         "ALTER TABLE public.events DETACH PARTITION remote.events_f), then boot again"),
        (ch.AddIndex(table=FOREIGN, index=_index("id", "kind")), "foreign tables"),
        (ch.AddIndex(table=FOREIGN, index=_index("name", unique=False)), None),
        (ch.AddForeignKey(table=FOREIGN, foreign_key=FK),
         "the foreign key events_kind_fkey of public.events cannot be made: its partitions "
         "public.events_2f, remote.events_f are foreign tables, and PostgreSQL cannot make a "
         "foreign key on"),
        (ch.AddForeignKey(table=TREE, foreign_key=FK), None),
        (ch.RebuildInvalidIndex(table=FOREIGN, index=_index("name", unique=False)),
         "the index events_idx of public.events is invalid and cannot be made valid: "
         "public.events_2f, remote.events_f are foreign tables"),
        (ch.RebuildInvalidIndex(table=TREE, index=_index("name", unique=False)), None),
    ],
    ids=["unique-index", "plain-index", "lacks-key", "lacks-sub-key", "primary-key",
         "unique", "existing-index", "key-expression", "not-partitioned", "foreign-unique",
         "foreign-unique-index", "foreign-plain-index", "foreign-fk", "fk", "foreign-invalid",
         "invalid"],
)  # fmt: skip
def test_which_unique_keys_are_refused_and_why(change: ch.Change, why: str | None) -> None:
    found = key_refusals([change])
    assert len(found) == (why is not None)
    if why is not None:
        assert why in found[0]


@pytest.mark.parametrize(
    ("change", "sql", "leaf"),
    [
        (ch.AddKeyConstraint(table=TREE, constraint=UNIQUE),
         "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS x ON public.events_2a USING btree (id)",
         "public.events_2a"),
        (ch.AddForeignKey(table=TREE, foreign_key=FK),
         'ALTER TABLE archive."Events 2b" VALIDATE CONSTRAINT events_kind_fkey',
         'archive."Events 2b"'),
        (ch.AddIndex(table=TREE, index=_index("id", "kind")),
         "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS x ON public.events_1 USING btree (id)",
         "public.events_1"),
        (ch.AddForeignKey(table=TREE, foreign_key=FK),
         "ALTER TABLE public.events ADD CONSTRAINT events_kind_fkey FOREIGN KEY (kind) …", None),
        (ch.AddForeignKey(table=replace(TREE, partitioned=False), foreign_key=FK),
         "ALTER TABLE public.events_1 VALIDATE CONSTRAINT events_kind_fkey", None),
    ],
    ids=["leaf-key", "quoted-leaf", "unique-index", "parent-step", "not-partitioned"],
)  # fmt: skip
def test_a_failed_leaf_step_says_what_stays_and_what_to_do(
    change: ch.Change, sql: str, leaf: str | None
) -> None:
    advice = failure_advice(change, sql)
    if leaf is None:
        assert advice is None
    else:
        assert advice == (f"the partitions done before {leaf} keep theirs, and the next heal "
                          f"continues from {leaf}: fix its rows the error names (or change the "
                          "manifest), then boot again")  # fmt: skip
