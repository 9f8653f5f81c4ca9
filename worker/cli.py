"""``schemaheal``: the command line. Parses arguments, dispatches, turns errors into exit codes.

Commands: ``manifest`` (from SQLAlchemy models), ``plan`` and ``heal`` (the engine against one
database), ``worker`` and ``await-schema`` (the boot gate), ``replay`` (audits), ``dev``
(embedded PostgreSQL and broker, worker, optional demo). Run ``schemaheal COMMAND --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import traceback
from collections.abc import Sequence

from contracts import ManifestError
from worker.engine.hazards import Hazard
from worker.errors import SchemahealError
from worker.secrets import redact
from worker.settings import (
    HealSettings,
    ReplaySettings,
    WorkerSettings,
)
from worker.settings_flags import add_flags, settings_from
from worker.settings_kafka import KafkaSettings


def _backfill_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = commands.add_parser(
        "backfill", help="run the database's pending online migrations once (no worker needed)"
    )
    backfill.add_argument("--dsn", required=True, help="postgresql://user@host:port/database")
    backfill.add_argument(
        "--retry", action="append", default=[], metavar="ID",
        help="clear a stopped migration's error first, once its cause is fixed (repeatable)",
    )  # fmt: skip
    backfill.add_argument(
        "--abandon", metavar="ID",
        help="abandon this running migration instead (drop its trigger and new column, back to "
        "the old shape); a dry run unless --apply",
    )  # fmt: skip
    backfill.add_argument("--apply", action="store_true", help="with --abandon: do it")
    backfill.add_argument(
        "--ignore-leases", action="store_true",
        help="with --abandon: even though live instances' leases say they use the new column",
    )  # fmt: skip
    backfill.add_argument("--batch-rows", type=int, default=1000, help="rows of the first batch")
    backfill.add_argument(
        "--batch-target-ms", type=float, default=50.0,
        help="batches are resized toward this duration (0: every batch --batch-rows rows)",
    )  # fmt: skip
    backfill.add_argument("--pause-s", type=float, default=0.0, help="pause between batches")
    backfill.add_argument("--ledger-schema", default="schemaheal", help="schema of the ledger")
    backfill.add_argument("--format", choices=["text", "json"], default="text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schemaheal",
        description="Heal PostgreSQL schemas at service boot: safe, additive, locked, recorded.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    manifest = commands.add_parser(
        "manifest", help="write a manifest from SQLAlchemy or SQLModel models"
    )
    manifest.add_argument(
        "--from-sqlalchemy",
        required=True,
        metavar="MODULE:ATTR",
        help="a MetaData, a declarative base or SQLModel, e.g. app.models:Base, "
        "app.models:SQLModel",
    )
    manifest.add_argument(
        "--extension",
        action="append",
        default=[],
        metavar="NAME",
        help="an extension the schema needs besides those its column types imply (repeatable)",
    )
    manifest.add_argument("--service", required=True, help="the service that owns the schema")
    manifest.add_argument("--database", required=True, help="the database alias")
    manifest.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    for name, text in (
        ("plan", "show what a heal would do; change nothing"),
        ("heal", "bring the database to the manifest, safely"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--dsn", required=True, help="postgresql://user@host:port/database")
        sub.add_argument("manifest", metavar="MANIFEST", help="manifest JSON file, or - for stdin")
        formats = ["text", "json", "sql"] if name == "plan" else ["text", "json"]
        sub.add_argument("--format", choices=formats, default="text")
        add_flags(sub, HealSettings)
        if name == "heal":
            sub.add_argument(
                "--allow-hazard",
                action="append",
                default=[],
                metavar="NAME",
                choices=[h.value for h in Hazard],
                help="approve a hazard: " + ", ".join(h.value for h in Hazard),
            )
    _backfill_parser(commands)
    worker = commands.add_parser("worker", help="consume service.starting, heal, reply")
    add_flags(worker)

    waiter = commands.add_parser(
        "await-schema", help="ask the worker for a heal and wait: exit 0 only when ready"
    )
    add_flags(waiter, KafkaSettings)
    waiter.add_argument("--service", help="must match the manifest's service")
    waiter.add_argument("--database", help="must match the manifest's database alias")
    waiter.add_argument("--instance", help="this replica's name (default: host name)")
    waiter.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    waiter.add_argument("--format", choices=["text", "json"], default="text")
    waiter.add_argument(
        "--signing-key", metavar="PEM", help="Ed25519 private key: sign the request"
    )
    waiter.add_argument("--key-id", help="which of the service's keys --signing-key is")
    waiter.add_argument("manifest", metavar="MANIFEST", help="manifest JSON file, or - for stdin")

    replay = commands.add_parser(
        "replay", help="audit: rebuild every boot of a time window from Kafka and the ledgers"
    )
    when = "ISO 8601 (2026-11-24T08:00Z), a date, or an age: 90m, 12h, 7d, 2w"
    replay.add_argument("--since", required=True, metavar="TIME", help=when)
    replay.add_argument("--until", default="now", metavar="TIME", help="end (exclusive); now")
    replay.add_argument("--service", help="only this service's boots")
    replay.add_argument("--format", choices=["table", "json", "html"], default="table")
    replay.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    replay.add_argument(
        "--reapply",
        action="store_true",
        help="heal manifests the database no longer satisfies (normal heal path, recorded)",
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_flags(replay, ReplaySettings)

    dev = commands.add_parser("dev", help="embedded PostgreSQL + broker + worker (+ --demo)")
    dev.add_argument("--demo", action="store_true", help="boot the seed's orchestrator replicas")
    dev.add_argument("--replicas", type=int, default=3, help="replicas in the demo")
    dev.add_argument("--exit-after-demo", action="store_true", help="stop when the demo is done")
    return parser


def run(args: argparse.Namespace) -> int:
    """Dispatch one parsed command; return its exit code."""
    if args.command == "manifest":
        from worker.commands.manifest_command import manifest_command

        return manifest_command(
            args.from_sqlalchemy,
            args.service,
            args.database,
            args.output,
            extensions=tuple(args.extension),
        )
    if args.command == "worker":
        from worker.commands.service_commands import worker_command

        return asyncio.run(worker_command(settings_from(args, WorkerSettings)))
    if args.command == "await-schema":
        from worker.commands.service_commands import await_schema_command

        return asyncio.run(
            await_schema_command(
                kafka=settings_from(args, KafkaSettings),
                manifest_path=args.manifest,
                service=args.service,
                database=args.database,
                instance=args.instance,
                timeout_s=args.timeout,
                fmt=args.format,
                signing_key=args.signing_key,
                key_id=args.key_id,
            )
        )
    if args.command == "replay":
        from worker.commands.replay_command import replay_command

        return asyncio.run(
            replay_command(
                settings_from(args, ReplaySettings),
                since=args.since,
                until=args.until,
                service=args.service,
                fmt=args.format,
                output_path=args.output,
                reapply_unsatisfied=args.reapply,
                show_progress=not args.no_progress,
            )
        )
    if args.command == "dev":
        from worker.commands.dev import dev_command

        return asyncio.run(
            dev_command(
                demo=args.demo, replicas=args.replicas, exit_after_demo=args.exit_after_demo
            )
        )
    if args.command == "backfill" and args.abandon:
        from worker.commands.backfill_command import abandon_command

        return asyncio.run(
            abandon_command(
                args.dsn, args.abandon, apply=args.apply, ignore_leases=args.ignore_leases,
                store_schema=args.ledger_schema, fmt=args.format,
            )
        )  # fmt: skip
    if args.command == "backfill":
        from worker.commands.backfill_command import backfill_command
        from worker.engine.backfill import BackfillSettings

        throttle = BackfillSettings(
            batch_rows=args.batch_rows, batch_target_ms=args.batch_target_ms,
            pause_s=args.pause_s, store_schema=args.ledger_schema,
        )  # fmt: skip
        return asyncio.run(backfill_command(args.dsn, throttle, retry=args.retry, fmt=args.format))
    from worker.commands.engine_commands import heal_command, plan_command

    settings = settings_from(args, HealSettings)
    if args.command == "plan":
        return asyncio.run(
            plan_command(args.dsn, args.manifest, args.format, settings.heal_options())
        )
    return asyncio.run(
        heal_command(
            args.dsn,
            args.manifest,
            args.format,
            args.allow_hazard,
            settings.heal_options(),
            settings.database_proxy,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``schemaheal`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ManifestError, SchemahealError) as exc:  # messages written for the user
        print(f"schemaheal: {redact(str(exc))}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: its traceback, with no password the process was given
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
