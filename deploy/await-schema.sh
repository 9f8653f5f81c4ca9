#!/bin/sh
# The boot gate for an init container without Python: kcat publishes service.starting and waits
# for the schema.healed reply that carries this request's own correlation_id.
#
#   deploy/await-schema.sh BOOTSTRAP_SERVERS MANIFEST_JSON
#
# Needs only a POSIX shell, coreutils and kcat (Debian/Alpine package `kcat`). The manifest is
# the file `schemaheal manifest` writes; its service and database name the request. Environment:
#   SCHEMAHEAL_TIMEOUT_S   how long to wait for the reply (default 120)
#   SCHEMAHEAL_REPLY_TOPIC where replies are read (default schema.healed); any other topic is
#                          asked for with reply_to and must be allowed by the worker's operators
#   SCHEMAHEAL_INSTANCE    who asks (default: the host name)
#   KCAT_OPTS              extra kcat options, e.g. "-X security.protocol=SASL_SSL ..."
# Prints the reply (headers, a tab, the JSON body). Exit 0: healed or unchanged, the service may
# start; 1: blocked, rejected or failed (the body says why); 2: no reply in time; 64: usage.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 BOOTSTRAP_SERVERS MANIFEST_JSON" >&2
  exit 64
fi
bootstrap=$1
manifest=$2
timeout_s=${SCHEMAHEAL_TIMEOUT_S:-120}
reply_topic=${SCHEMAHEAL_REPLY_TOPIC:-schema.healed}
instance=${SCHEMAHEAL_INSTANCE:-$(hostname)}
kcat_opts=${KCAT_OPTS:-}

# The manifest's "service" and "database" (keys no nested object of a manifest has; a wrong
# pick would be rejected by the worker as inconsistent, never served).
field() {
  tr -d '\n' < "$manifest" | grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n 1 |
    sed 's/.*:[[:space:]]*"\(.*\)"$/\1/'
}
service=$(field service)
database=$(field database)
if [ -z "$service" ] || [ -z "$database" ]; then
  echo "$manifest: no \"service\" and \"database\" in it: write it with 'schemaheal manifest'" >&2
  exit 64
fi

request_id=$(cat /proc/sys/kernel/random/uuid)
correlation=$(cat /proc/sys/kernel/random/uuid)
work=$(mktemp -d)
reader=""
trap 'if [ -n "$reader" ]; then kill "$reader" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

# Read replies first, from a minute back (clock skew): the reply cannot come before the request,
# and the correlation_id picks ours out of everyone's.
since_ms=$(( ($(date +%s) - 60) * 1000 ))
# shellcheck disable=SC2086  # KCAT_OPTS is a list of options
kcat -C -u -q $kcat_opts -b "$bootstrap" -t "$reply_topic" -o "s@$since_ms" \
  -f '%h\t%s\n' > "$work/replies" 2> "$work/reader.log" &
reader=$!

printf '{"service":"%s","instance":"%s","database":"%s","manifest":' \
  "$service" "$instance" "$database" > "$work/request.json"
cat "$manifest" >> "$work/request.json"
printf '}' >> "$work/request.json"
set -- -H "ce_specversion=1.0" -H "ce_id=$request_id" \
  -H "ce_source=/services/$service/$instance" -H "ce_type=dev.schemaheal.service.starting.v1" \
  -H "ce_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)" -H "ce_subject=$database" \
  -H "content-type=application/json" -H "correlation_id=$correlation"
if [ "$reply_topic" != "schema.healed" ]; then
  set -- "$@" -H "reply_to=$reply_topic"
fi
# shellcheck disable=SC2086
kcat -P $kcat_opts -b "$bootstrap" -t service.starting -k "$database" "$@" "$work/request.json"
echo "request $request_id (correlation_id $correlation) sent; waiting for the reply" >&2

waited=0
while :; do
  reply=$(grep -F "correlation_id=$correlation" "$work/replies" | head -n 1 || true)
  if [ -n "$reply" ]; then
    break
  fi
  if [ "$waited" -ge $(( timeout_s * 5 )) ] || ! kill -0 "$reader" 2>/dev/null; then
    echo "no reply to request $request_id within ${timeout_s} s on $reply_topic: is the" \
      "schemaheal worker running? $(cat "$work/reader.log")" >&2
    exit 2
  fi
  sleep 0.2
  waited=$(( waited + 1 ))
done
printf '%s\n' "$reply"
case $reply in
  *'"outcome":"healed"'* | *'"outcome":"unchanged"'*) exit 0 ;;
  *) exit 1 ;;
esac
