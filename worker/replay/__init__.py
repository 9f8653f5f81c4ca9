"""``schemaheal replay``: what happened to the schemas, when, and who asked.

``history`` reads the gate's topics by time (I/O) → ``audit.reconstruct`` joins them with the
ledger into boots and mismatches (pure) → ``report`` renders a table, JSON lines or HTML (pure);
``database`` reads the ledger and the DDL log, re-plans read-only and, only with ``--reapply``,
heals through the normal path (I/O).
"""
