package main

import (
	"net"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
)

func TestCLI_HealthReady(t *testing.T) {
	e := newCLITestEnv(t)
	delete(e.env, "KEYZONE_TOKEN") // health needs no token
	out := e.mustRun(t, nil, "health")
	if got := strings.TrimSpace(string(out)); got != "ready" {
		t.Errorf("health: got %q, want ready", got)
	}
	h := cliJSON[wire.Health](t, e.mustRun(t, nil, "health", "-o", "json"))
	if !h.Live || !h.Ready {
		t.Errorf("health -o json: got %+v", h)
	}
	// --addr wins over KEYZONE_ADDR.
	e.env["KEYZONE_ADDR"] = "http://127.0.0.1:1"
	e.mustRun(t, nil, "health", "--addr", e.url)
}

func TestCLI_HealthNotReady(t *testing.T) {
	e := newCLITestEnv(t)
	e.cluster.HealthResult = cluster.Health{Live: true, Reason: "no known leader"}
	out, err := e.run(t, nil, "health")
	if err == nil || !strings.Contains(err.Error(), "not ready: no known leader") {
		t.Fatalf("health of a node without leader: got %v, want not ready: no known leader", err)
	}
	if !strings.Contains(string(out), "no known leader") {
		t.Errorf("stdout: got %q", out)
	}
	e.cluster.HealthResult = cluster.Health{Reason: "shutting down"}
	if _, err := e.run(t, nil, "health"); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("health of a node shutting down: got %v", err)
	}
}

func TestCLI_HealthUnreachable(t *testing.T) {
	e := newCLITestEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close() // nothing listens there any more
	if _, err := e.run(t, nil, "health", "--addr", addr, "--timeout", "2s"); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("health of a closed port: got %v", err)
	}
	delete(e.env, "KEYZONE_ADDR")
	if _, err := e.run(t, nil, "health"); err == nil || !strings.Contains(err.Error(), "KEYZONE_ADDR") {
		t.Errorf("health without address: got %v", err)
	}
	if _, err := e.run(t, nil, "health", "--addr", e.url, "--timeout", "0s"); err == nil {
		t.Error("health --timeout 0s: want an error")
	}
}

func TestCLI_RootWiresHealth(t *testing.T) {
	c, _, err := newRootCommand().Find([]string{"health"})
	if err != nil || c.Name() != "health" {
		t.Errorf("keyzone health: got %v, %v", c, err)
	}
}
