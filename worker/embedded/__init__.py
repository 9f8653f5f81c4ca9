"""Local servers for ``schemaheal dev`` and the tests: PostgreSQL and a Kafka-protocol broker."""
