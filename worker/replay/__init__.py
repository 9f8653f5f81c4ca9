"""``schemaheal replay``: what happened to the schemas, when, and who asked.

``history`` reads every record of the gate's topics (I/O; its decisions in ``reading``, pure) →
``accounting.account`` puts each record read into one class (everything read, pure) →
``audit.reconstruct`` joins them with the ledger into boots, and each function of ``mismatches``
judges its kind (everything matched, pure) → ``report`` renders a table, JSON lines or HTML
(pure); ``database`` reads the ledger and the DDL log, re-plans read-only and, only with
``--reapply``, heals through the normal path (I/O).
"""
