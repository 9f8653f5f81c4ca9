"""Issue 15.7: the databases setting never shows a DSN, however it is written wrong."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from worker.secrets import RedactingFilter, redact
from worker.settings import WorkerSettings, parse_databases

SECRET = "Hunter2xQ"
URL = f"postgresql://app:{SECRET}@db.internal:5432/nexus"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (URL, "line 1 of SCHEMAHEAL_DATABASES is a DSN without its alias"),
        (URL + "?sslmode=require", "is a DSN without its alias"),  # was split at sslmode's '='
        (f"nexus=host=db password={SECRET}", "gives alias 'nexus' a DSN that is not a postgresql"),
        (f"host=db password={SECRET}", "gives alias 'host' a DSN that is not"),
        (f"Nexus Prod={URL}", "is not ALIAS=postgresql://"),
        (f"nexus={URL}\n{URL}?sslmode=require", "line 2 of SCHEMAHEAL_DATABASES is a DSN without"),
    ],
)
def test_an_item_that_is_not_alias_equals_url_is_refused_by_position_only(
    text: str, says: str
) -> None:
    with pytest.raises(ValueError, match="it is not shown") as caught:
        parse_databases(text)
    assert says in str(caught.value)
    assert SECRET not in str(caught.value) and "db.internal" not in str(caught.value)


def test_query_strings_commas_in_passwords_and_comments_keep_each_dsn_whole() -> None:
    text = (f"# production\r\nnexus = {URL}?sslmode=require&password={SECRET}\r\n\r\n"
            f"billing=postgresql://app:{SECRET},x=y@db/billing,audit=postgres://db/audit")  # fmt: skip
    parsed = {k: v.get_secret_value() for k, v in parse_databases(text).items()}
    assert parsed == {
        "nexus": f"{URL}?sslmode=require&password={SECRET}",
        "billing": f"postgresql://app:{SECRET},x=y@db/billing",
        "audit": "postgres://db/audit",
    }


def test_a_file_line_is_named_by_its_number_and_the_file(tmp_path: Path) -> None:
    databases = tmp_path / "databases"
    databases.write_text(f"nexus={URL}\n\n{URL}\n")
    with pytest.raises(ValueError, match=f"line 3 of {databases} is a DSN without its alias"):
        WorkerSettings(databases_file=databases)


def fail(message: str) -> None:
    raise RuntimeError(message)


def test_known_passwords_are_masked_in_every_log_line_and_traceback() -> None:
    parse_databases(f"nexus=postgresql://app:{SECRET}%40x@db/n,b=postgresql://u@db/b?password=p4ss")
    assert redact(f"failed: {SECRET}@x and p4ss") == "failed: *** and ***"  # decoded %40 too
    try:
        fail(f"cannot use {SECRET}@x")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, "f", 1, "dsn %s", ("p4ss",),
                                   exc_info=sys.exc_info())  # fmt: skip
    record.dsn = f"{SECRET}@x"
    RedactingFilter().filter(record)
    shown = logging.Formatter("%(message)s %(dsn)s").format(record)
    assert shown.startswith("dsn *** ***") and "RuntimeError: cannot use ***\n" in shown + "\n"
    assert SECRET not in shown
