"""The healing engine: inspect (I/O) → Realm → diff → plan (pure) → apply (I/O).

See ``worker.engine.heal`` for the whole cycle under advisory locks.
"""
