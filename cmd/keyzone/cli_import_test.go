package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/test/clustertest"
)

// TestCLI_KeyImport imports material with `keyzone key import` into a
// real single-node zone and uses the key.
func TestCLI_KeyImport(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{})
	e := &cliTestEnv{env: map[string]string{"KEYZONE_ADDR": c.Nodes[0].Addr(), "KEYZONE_TOKEN": c.Token}}
	dir := t.TempDir()
	file := filepath.Join(dir, "material.bin")
	material := []byte("0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(file, material, 0o600); err != nil {
		t.Fatal(err)
	}

	k := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "create", "--name", "byok", "--origin", "external", "-o", "json"))
	if k.State != "pending_import" || k.Origin != "external" {
		t.Fatalf("created %s key in state %s, want external pending_import", k.Origin, k.State)
	}
	k = cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "import", k.ID, "--material-file", file, "-o", "json"))
	if k.State != "enabled" || k.CurrentVersion != 1 {
		t.Fatalf("after import: state %s version %d, want enabled 1", k.State, k.CurrentVersion)
	}
	ct := e.mustRun(t, []byte("imported secret"), "encrypt", k.ID)
	if pt := e.mustRun(t, ct, "decrypt"); string(pt) != "imported secret" {
		t.Fatalf("decrypt: %q", pt)
	}
	// The same material from stdin: a second version.
	k = cliJSON[wire.Key](t, e.mustRun(t, material, "key", "import", k.ID, "--material-file", "-", "-o", "json"))
	if k.CurrentVersion != 2 {
		t.Fatalf("after the second import: version %d, want 2", k.CurrentVersion)
	}

	short := filepath.Join(dir, "short.bin")
	if err := os.WriteFile(short, material[:15], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.run(t, nil, "key", "import", k.ID, "--material-file", short); err == nil || !strings.Contains(err.Error(), "15 bytes") {
		t.Errorf("import of 15 bytes: %v, want the size refused", err)
	}
	if _, err := e.run(t, nil, "key", "import", k.ID); err == nil || !strings.Contains(err.Error(), "material-file") {
		t.Errorf("import without --material-file: %v", err)
	}
	own := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "create", "--name", "own", "-o", "json"))
	if _, err := e.run(t, nil, "key", "import", own.ID, "--material-file", file); err == nil || !strings.Contains(err.Error(), "origin_not_external") {
		t.Errorf("import into a key of origin keyzone: %v, want origin_not_external", err)
	}
}
