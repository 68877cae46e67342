package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// auditLogSample mixes audit events (as `keyzone server --audit-log`
// writes them, bare, behind a docker-compose prefix, and as a --log-json
// node log line) with lines that are none.
func auditLogSample(now time.Time) string {
	old := now.Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	recent := now.Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	return strings.Join([]string{
		`2026-01-02T10:00:00.000Z [INFO]  a1.raft: entering follower state`,
		`{"time":"` + old + `","request_id":"r1","node":"a1","zone":"zone-a","method":"POST","route":"/v1/orgs","organization":"","token_id":"","role":"operator","operation":"create-organization","status":201,"outcome":"success","source":"127.0.0.1:5","duration_ms":1.5}`,
		`{"time":"` + recent + `","request_id":"r2","node":"a1","zone":"zone-a","method":"POST","route":"/v1/keys/:id/encrypt","organization":"org-acme","token_id":"tokA","role":"crypto-user","operation":"encrypt","key_id":"k1","key_version":2,"status":200,"outcome":"success","source":"127.0.0.1:6","duration_ms":0.4}`,
		`a1_1  | {"time":"` + recent + `","request_id":"r3","node":"a1","zone":"zone-a","method":"POST","route":"/v1/keys/:id/rotate","organization":"org-acme","token_id":"tokA","role":"crypto-user","operation":"rotate-key","key_id":"k1","status":403,"outcome":"denied","code":"forbidden","source":"127.0.0.1:6","duration_ms":0.2}`,
		`{"@level":"info","@message":"admin call","@module":"keyzone.a1.audit","time":"` + recent + `","request_id":"r4","route":"/v1/keys/:id","organization":"org-demo","token_id":"tokD","role":"org-admin","operation":"get-key","key_id":"k1","status":404,"outcome":"refused"}`,
		`{"@level":"info","@message":"shutting down","@module":"keyzone"}`,
		`{"broken json`,
		``,
	}, "\n")
}

func TestCLI_AuditFilters(t *testing.T) {
	e := &cliTestEnv{env: map[string]string{}}
	now := time.Now()
	file := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(file, []byte(auditLogSample(now)), 0o600); err != nil {
		t.Fatal(err)
	}
	ids := func(out string) string {
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" {
				got = append(got, l)
			}
		}
		return strings.Join(got, "|")
	}
	requestIDs := func(args ...string) string {
		t.Helper()
		out := string(e.mustRun(t, nil, append([]string{"audit", file, "-o", "json"}, args...)...))
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l == "" {
				continue
			}
			m := cliJSON[map[string]any](t, []byte(l))
			got = append(got, m["request_id"].(string))
		}
		return strings.Join(got, ",")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "r1,r2,r3,r4"},
		{[]string{"--org", "org-acme"}, "r2,r3"},
		{[]string{"--key", "k1"}, "r2,r3,r4"},
		{[]string{"--op", "encrypt"}, "r2"},
		{[]string{"--op", "ROTATE-KEY"}, "r3"},
		{[]string{"--token", "tokD"}, "r4"},
		{[]string{"--status", "403"}, "r3"},
		{[]string{"--status", "4xx"}, "r3,r4"},
		{[]string{"--since", "1h"}, "r2,r3,r4"},
		{[]string{"--since", now.Add(-3 * time.Hour).UTC().Format(time.RFC3339)}, "r1,r2,r3,r4"},
		{[]string{"--org", "org-acme", "--status", "2xx", "--key", "k1"}, "r2"},
		{[]string{"--org", "nobody"}, ""},
	} {
		if got := requestIDs(tt.args...); got != tt.want {
			t.Errorf("audit %v: got %q, want %q", tt.args, got, tt.want)
		}
	}

	// -o json prints the lines as they are, without a prefix.
	out := string(e.mustRun(t, nil, "audit", file, "-o", "json", "--status", "403"))
	if !strings.HasPrefix(out, `{"time":"`) || !strings.HasSuffix(out, `"duration_ms":0.2}`+"\n") {
		t.Errorf("audit -o json: got %q", out)
	}

	// The table, from stdin.
	table := string(e.mustRun(t, []byte(auditLogSample(now)), "audit", "--org", "org-acme"))
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "TIME ORG TOKEN ROLE OPERATION KEY VERSION STATUS OUTCOME" {
		t.Fatalf("audit table:\n%s", table)
	}
	if f := strings.Fields(lines[1]); len(f) != 9 || f[1] != "org-acme" || f[2] != "tokA" || f[3] != "crypto-user" || f[4] != "encrypt" || f[5] != "k1" || f[6] != "2" || f[7] != "200" || f[8] != "success" {
		t.Errorf("encrypt row: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) != 9 || f[6] != "-" || f[7] != "403" || f[8] != "denied" {
		t.Errorf("rotate row: %q", lines[2])
	}
	if got := ids(string(e.mustRun(t, []byte(auditLogSample(now)), "audit", "-", "--org", "nobody"))); !strings.HasPrefix(got, "TIME") || strings.Contains(got, "|") {
		t.Errorf("no match: got %q, want the header alone", got)
	}

	for _, bad := range [][]string{
		{"audit", file, "--status", "4x"},
		{"audit", file, "--status", "700"},
		{"audit", file, "--since", "yesterday"},
		{"audit", file, "-o", "yaml"},
		{"audit", file + ".missing"},
		{"audit", file, file},
	} {
		if _, err := e.run(t, nil, bad...); err == nil {
			t.Errorf("%v: got nil error", bad)
		}
	}
}
