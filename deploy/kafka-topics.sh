#!/bin/sh
# Creates the boot gate's topics on the Compose Kafka (the worker also creates missing ones).
# Audit topics keep time-based retention, never compaction: a year of history by default.
set -eu
for topic in service.starting schema.healed service.starting.dlq service.heartbeat; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --create --if-not-exists \
    --topic "$topic" --partitions 6 --replication-factor 1 \
    --config cleanup.policy=delete --config retention.ms=31536000000 \
    --config max.message.bytes=9437184  # the worker's 8 MiB bodies plus 1 MiB of headers
done
