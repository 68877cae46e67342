#!/bin/sh
# wait-healthy.sh TIMEOUT_SECONDS CONTAINER_ID...
# Waits until every container reports healthy; on timeout or when one has
# stopped, prints each container's state and fails.
set -eu
timeout=$1; shift
[ $# -gt 0 ] || { echo "wait-healthy: no containers (is the project up?)" >&2; exit 1; }
deadline=$(( $(date +%s) + timeout ))
while :; do
	pending=0
	for id in "$@"; do
		st=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
		case $st in
		"running healthy") ;;
		running*) pending=1 ;;
		*) echo "wait-healthy: container $(docker inspect -f '{{.Name}}' "$id") is $st" >&2; exit 1 ;;
		esac
	done
	[ $pending -eq 0 ] && exit 0
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "wait-healthy: not every container is healthy after ${timeout}s:" >&2
		for id in "$@"; do
			docker inspect -f '  {{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" >&2
		done
		exit 1
	fi
	sleep 1
done
