#!/bin/sh
# As the official redis image: a redis-server started without a config file accepts
# connections from the network (protected mode off).
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
