#!/bin/sh
# wait-healthy.sh TIMEOUT_SECONDS CONTAINER_ID...
# Waits until every container reports healthy, and every one-shot container
# (one without a healthcheck, as compose's `demo`) has exited with 0; on
# timeout, when a container with a healthcheck has stopped or a one-shot one
# failed, prints each container's state and fails.
set -eu
timeout=$1; shift
[ $# -gt 0 ] || { echo "wait-healthy: no containers (is the project up?)" >&2; exit 1; }
deadline=$(( $(date +%s) + timeout ))
while :; do
	pending=0
	for id in "$@"; do
		st=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' "$id")
		case $st in
		"running healthy "*) ;;
		"exited none 0") ;;
		running*|"created none "*) pending=1 ;;
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
