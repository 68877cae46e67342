#!/bin/sh
# demo-env.sh SECRETS_DIR COMPOSE_COMMAND...
# Prints the env lines of a compose deployment's tokens, for the CLI:
# KEYZONE_OPERATOR_TOKEN (from SECRETS_DIR/token) and, from the log of the
# one-shot service demo, the demo organization's KEYZONE_TOKEN (org-admin)
# and KEYZONE_CRYPTO_TOKEN (crypto-user) of its last run. Fails when demo
# has printed no tokens (yet). E.g. after `make up`:
#   deploy/demo-env.sh .e2e docker-compose -p keyzone >> .e2e/env
set -eu
[ $# -ge 2 ] || { echo "usage: demo-env.sh SECRETS_DIR COMPOSE_COMMAND..." >&2; exit 2; }
secrets=$1; shift
tokens=$("$@" logs --no-color demo | grep -o 'KEYZONE_[A-Z_]*TOKEN=kzt_[^[:space:]]*' | tail -n 2)
case $tokens in
KEYZONE_TOKEN=*KEYZONE_CRYPTO_TOKEN=*) ;;
*) echo "demo-env: the demo service has printed no tokens (docker-compose logs demo)" >&2; exit 1 ;;
esac
echo "KEYZONE_OPERATOR_TOKEN=$(cat "$secrets/token")"
echo "$tokens"
