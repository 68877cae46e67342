#!/bin/sh
# e2e-clean.sh [PREFIX]
# Removes every container, network and volume of the compose projects whose
# name starts with PREFIX (kze2e: the end-to-end suite's). The suite removes
# its own project; this catches what a run killed outright (the go test
# timeout, SIGKILL) left behind. Uses only docker and compose labels, so it
# works whichever compose client made them.
set -u
prefix=${1:-kze2e}
label=com.docker.compose.project
projects=$( { docker ps -a --filter "label=$label" --format "{{.Label \"$label\"}}";
	docker network ls --filter "label=$label" --format "{{.Label \"$label\"}}";
	docker volume ls --filter "label=$label" --format "{{.Label \"$label\"}}"; } | grep "^$prefix" | sort -u)
for p in $projects; do
	echo "e2e-clean: removing leftovers of compose project $p"
	ids=$(docker ps -aq --filter "label=$label=$p")
	[ -z "$ids" ] || docker rm -f -v $ids >/dev/null
	nets=$(docker network ls -q --filter "label=$label=$p")
	[ -z "$nets" ] || docker network rm $nets >/dev/null
	vols=$(docker volume ls -q --filter "label=$label=$p")
	[ -z "$vols" ] || docker volume rm $vols >/dev/null
done
exit 0
