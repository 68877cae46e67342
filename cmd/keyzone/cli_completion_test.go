package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
)

// runRoot runs the whole keyzone command tree, as main does.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return out.String(), err
}

func TestCLI_CompletionScripts(t *testing.T) {
	bash, err := runRoot(t, "completion", "bash")
	if err != nil {
		t.Fatal(err)
	}
	zsh, err := runRoot(t, "completion", "zsh")
	if err != nil {
		t.Fatal(err)
	}
	// The scripts register a completion function for keyzone that asks
	// the binary for the candidates.
	for shell, script := range map[string]string{"bash": bash, "zsh": zsh} {
		if !strings.Contains(script, "__complete") || !strings.Contains(script, "keyzone") {
			t.Errorf("%s script does not ask `keyzone __complete`:\n%.300s", shell, script)
		}
	}
	if !strings.Contains(bash, "complete -o default -F __start_keyzone keyzone") {
		t.Errorf("bash script does not register __start_keyzone:\n%.300s", bash)
	}
	if !strings.HasPrefix(zsh, "#compdef keyzone") {
		t.Errorf("zsh script does not start with #compdef keyzone:\n%.300s", zsh)
	}
	for _, bad := range [][]string{{"completion", "fish"}, {"completion"}, {"completion", "bash", "zsh"}} {
		if _, err := runRoot(t, bad...); err == nil {
			t.Errorf("keyzone %s: want an error", strings.Join(bad, " "))
		}
	}
}

// The scripts complete what `keyzone __complete` answers: the
// subcommands, their subcommands and the -o values.
func TestCLI_CompletionCandidates(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{""}, []string{"server", "dev", "key", "cluster", "zone", "health", "encrypt", "decrypt", "completion", "org", "token", "whoami", "audit"}},
		{[]string{"org", ""}, []string{"create", "list", "get", "update"}},
		{[]string{"token", ""}, []string{"create", "list", "revoke"}},
		{[]string{"token", "create", "--role", ""}, []string{"org-admin", "key-admin", "crypto-user", "auditor"}},
		{[]string{"audit", "-o", ""}, []string{"table", "json"}},
		{[]string{"whoami", "-o", ""}, []string{"table", "json"}},
		{[]string{"cluster", ""}, []string{"status", "peers", "remove-peer", "transfer-leadership", "verify"}},
		{[]string{"key", ""}, []string{"create", "list", "get", "rotate", "schedule-deletion", "update-primary"}},
		{[]string{"zone", ""}, []string{"status"}},
		{[]string{"cluster", "peers", "-o", ""}, []string{"table", "json"}},
		{[]string{"health", "--output", ""}, []string{"table", "json"}},
		{[]string{"completion", ""}, []string{"bash", "zsh"}},
	}
	for _, tt := range tests {
		out, err := runRoot(t, append([]string{cobra.ShellCompRequestCmd}, tt.args...)...)
		if err != nil {
			t.Fatalf("__complete %q: %v", tt.args, err)
		}
		got := map[string]bool{}
		for _, line := range strings.Split(out, "\n") {
			name, _, _ := strings.Cut(line, "\t")
			got[name] = true
		}
		for _, w := range tt.want {
			if !got[w] {
				t.Errorf("__complete %q: %q missing from\n%s", tt.args, w, out)
			}
		}
	}
}

// Every admin command takes -o table|json and refuses anything else
// before it calls the node.
func TestCLI_OutputFlagOnEveryAdminCommand(t *testing.T) {
	root := newRootCommand()
	var leaves []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() {
			leaves = append(leaves, c)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	for _, name := range []string{"key", "cluster", "zone", "health", "org", "token", "whoami", "audit"} {
		c, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		walk(c)
	}
	if len(leaves) < 30 {
		t.Fatalf("found only %d admin commands", len(leaves))
	}
	for _, c := range leaves {
		f := c.Flag("output")
		if f == nil || f.Shorthand != "o" || f.DefValue != "table" {
			t.Errorf("%s: no -o/--output flag defaulting to table", c.CommandPath())
		}
	}

	e := newCLITestEnv(t)
	k := e.createKey(t, "o1")
	for _, args := range [][]string{
		{"health"}, {"cluster", "status"}, {"cluster", "peers"}, {"zone", "status"}, {"key", "get", k.ID},
		{"key", "rotate", k.ID}, {"cluster", "remove-peer", "node-2"},
		{"org", "create", "acme"}, {"org", "list"}, {"org", "get", "acme"}, {"org", "update", "acme", "--key-quota", "1"},
		{"token", "create", "--org", "acme", "--role", "auditor"}, {"token", "list", "--org", "acme"}, {"token", "revoke", "--org", "acme", "t1"},
		{"whoami"}, {"audit", "/nonexistent"},
	} {
		_, err := e.run(t, nil, append(args, "-o", "yaml")...)
		if err == nil || !strings.Contains(err.Error(), `--output "yaml"`) {
			t.Errorf("keyzone %s -o yaml: got %v, want an --output error", strings.Join(args, " "), err)
		}
	}
	if got := e.keys.LastCall().Method; got == "RotateKey" {
		t.Error("rotate -o yaml rotated the key before refusing the output format")
	}
	if _, err := e.run(t, nil, "key", "create", "--name", "q", "-q", "-o", "json"); err == nil {
		t.Error("key create -q -o json: want an error")
	}
}

func TestCLI_HealthDegradedExitsZero(t *testing.T) {
	e := newCLITestEnv(t)
	e.cluster.HealthResult = cluster.Health{Live: true, Ready: true, Degraded: true,
		Reasons: []string{"voter node-3 is unreachable: not in the gossip pool", "zone zone-b lags"}}
	out := e.mustRun(t, nil, "health")
	want := "degraded: voter node-3 is unreachable: not in the gossip pool\ndegraded: zone zone-b lags\n"
	if string(out) != want {
		t.Errorf("health: got %q, want %q", out, want)
	}
	h := cliJSON[wire.Health](t, e.mustRun(t, nil, "health", "-o", "json"))
	if h.Status != wire.HealthDegraded || len(h.Reasons) != 2 {
		t.Errorf("health -o json: got %+v", h)
	}

	// Not ready: exit non-zero with every reason; --live still succeeds.
	e.cluster.HealthResult = cluster.Health{Live: true, Reasons: []string{"catching up: applied index 1 is 5000 entries behind the leader's 5001"}}
	if _, err := e.run(t, nil, "health"); err == nil || !strings.Contains(err.Error(), "catching up") {
		t.Errorf("health of a node catching up: got %v", err)
	}
	if out := e.mustRun(t, nil, "health", "--live"); strings.TrimSpace(string(out)) != "live" {
		t.Errorf("health --live: got %q", out)
	}
}
