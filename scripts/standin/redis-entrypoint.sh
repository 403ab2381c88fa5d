#!/bin/sh
# The entrypoint of the Redis stand-in image (scripts/docker-standin-images.sh): like the redis
# image's, it turns protected mode off when it starts redis-server without a config file, so other
# containers may connect (every client logs in as its own ACL user; the default user is off).
set -e
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server "$@" --protected-mode no
fi
exec "$@"
