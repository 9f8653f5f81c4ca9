"""The SQL that carries an in-place swap's dependents (pure): a golden text for one value of
every kind, and tables for the index rewrite and the refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.engine.expand_dependents import (
    Dependents,
    ForeignKey,
    Grant,
    Index,
    Policy,
    Trigger,
    View,
    after_swap,
    before_swap,
    prepared_index_sql,
    refusal,
)

GOLDEN = Path(__file__).parent / "expand_golden" / "swap_dependents.sql"

EVERY_KIND = Dependents(
    indexes=(
        Index(
            name="orders_code_idx",
            definition="CREATE INDEX orders_code_idx ON public.orders USING btree (code)",
            comment="by code",
            clustered=True,
        ),
        Index(
            name="orders_code_key",
            definition="CREATE UNIQUE INDEX orders_code_key ON public.orders USING btree (code)",
            constraint="orders_code_key",
            deferrable=True,
            deferred=True,
            replica_identity=True,
            constraint_comment="it's unique",
            referenced_by=(
                ForeignKey(
                    table="public.lines",
                    name="lines_code_fkey",
                    definition="FOREIGN KEY (code) REFERENCES public.orders(code)",
                ),
            ),
        ),
    ),
    views=(
        View(
            name="public.codes",
            query=" SELECT orders.id,\n    orders.code\n   FROM orders;",
            options=("security_barrier=true",),
            owner="app",
            comment="codes",
            grants=(
                Grant(grantee="app", privilege="SELECT"),
                Grant(grantee="reader", privilege="SELECT", grantable=True),
                Grant(grantee="PUBLIC", privilege="UPDATE", column="code"),
            ),
            column_comments=(("code", "the code"),),
        ),
        View(
            name='public."Big codes"',
            query=" SELECT codes.code FROM public.codes;",
            owner="Ops Team",
        ),
    ),
    triggers=(
        Trigger(
            name="orders_audit",
            table="public.orders",
            enabled="D",
            comment="audit",
            definition="CREATE TRIGGER orders_audit BEFORE UPDATE OF code ON public.orders "
            "FOR EACH ROW EXECUTE FUNCTION audit()",
        ),
        Trigger(
            name="codes_ro",
            table="public.codes",
            on_view=True,
            enabled="A",
            definition="CREATE TRIGGER codes_ro INSTEAD OF INSERT ON public.codes "
            "FOR EACH ROW EXECUTE FUNCTION ro()",
        ),
    ),
    policies=(
        Policy(
            name="positive",
            table="public.orders",
            command="SELECT",
            permissive=True,
            roles=("reader", "PUBLIC"),
            using="(code > 0)",
            check=None,
            comment="only +",
        ),
        Policy(
            name="own",
            table="public.lines",
            command="ALL",
            permissive=False,
            roles=(),
            using=None,
            check="(code IN ( SELECT orders.code FROM public.orders))",
        ),
    ),
)


def test_golden_swap_dependents(update_golden: bool) -> None:
    before = before_swap(EVERY_KIND, "public", "orders")
    after = after_swap(EVERY_KIND, "public", "orders")
    text = "\n".join(["-- before the swap", *before, "-- after the swap", *after]) + "\n"
    if update_golden:
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_what_is_dropped_is_created_again_and_views_in_dependency_order() -> None:
    before = before_swap(EVERY_KIND, "public", "orders")
    after = after_swap(EVERY_KIND, "public", "orders")
    assert before.index('DROP VIEW public."Big codes"') < before.index("DROP VIEW public.codes")
    creates = [s for s in after if s.startswith("CREATE VIEW")]
    assert [s.split(" ")[2] for s in creates] == ["public.codes", 'public."Big']
    # the foreign key goes before its index, and comes back after it, NOT VALID
    drop_fk = before.index("ALTER TABLE public.lines DROP CONSTRAINT lines_code_fkey")
    assert drop_fk < before.index("ALTER TABLE public.orders DROP CONSTRAINT orders_code_key")
    add_fk = after.index(
        "ALTER TABLE public.lines ADD CONSTRAINT lines_code_fkey FOREIGN KEY (code) "
        "REFERENCES public.orders(code) NOT VALID"
    )
    assert add_fk > next(i for i, s in enumerate(after) if "UNIQUE USING INDEX" in s)
    # a view's INSTEAD OF trigger goes with the view, and is created again
    assert not [s for s in before if "codes_ro" in s]
    assert [s for s in after if s.startswith("CREATE TRIGGER codes_ro")]


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            "CREATE INDEX i ON public.t USING btree (code)",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i__sh_ix ON public.t (code__sh_new)",
        ),
        (
            "CREATE UNIQUE INDEX i ON public.t USING btree (tenant, code DESC) INCLUDE (code)",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i__sh_ix ON public.t "
            "(tenant, code__sh_new DESC) INCLUDE (code__sh_new)",
        ),
        (
            "CREATE INDEX i ON public.t USING gist (box(point((code)::double precision, "
            "(0)::double precision), point(t.code, 1))) WHERE (code > 0)",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i__sh_ix ON public.t USING gist "
            "((box(point(CAST(code__sh_new AS double precision), CAST(0 AS double precision)),"
            " point(t.code__sh_new, 1)))) WHERE code__sh_new > 0",
        ),
        (  # a column whose name only contains the old one's is left alone
            'CREATE INDEX "I" ON "S".t USING btree (code_2, ((code_2 + 1))) WHERE "Code" > 0',
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "I__sh_ix" ON "S".t (code_2, '
            '(code_2 + 1)) WHERE "Code" > 0',
        ),
    ],
)
def test_an_index_is_rewritten_onto_the_shadow(definition: str, expected: str) -> None:
    index = Index(
        name=definition.split(" ON ", maxsplit=1)[0].rsplit(" ", maxsplit=1)[-1].strip('"'),
        definition=definition,
    )
    assert prepared_index_sql(index, "code", "code__sh_new") == expected


def test_a_prepared_index_stays_in_its_tablespace() -> None:
    index = Index(name="i", definition="CREATE INDEX i ON s.t USING btree (code)",
                  tablespace="Fast Disk")  # fmt: skip
    assert prepared_index_sql(index, "code", "code__sh_new") == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS i__sh_ix ON s.t (code__sh_new) TABLESPACE "Fast Disk"'
    )


def test_a_refusal_names_each_object_and_what_to_do() -> None:
    text = refusal(("materialized view public.m", "column g of table public.t"), "public.t", "c",
                   "boot again")  # fmt: skip
    assert "materialized view public.m; column g of table public.t" in text
    assert text.endswith("create them again after the swap, then boot again")
