package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevRootKey: a missing file receives the fresh key (0600) and a later
// run reads the same key back; a file that is not a root key is an error,
// never silently replaced.
func TestDevRootKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "root-key")
	_, fresh, _, err := devSecrets()
	if err != nil {
		t.Fatal(err)
	}
	first, b64, err := devRootKey(file, fresh)
	if err != nil || b64 != fresh {
		t.Fatalf("first run: %v (kept %q, want the fresh key)", err, b64)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	_, other, _, _ := devSecrets()
	second, b64, err := devRootKey(file, other)
	if err != nil || b64 != fresh || second.ID() != first.ID() {
		t.Fatalf("second run: %v, key %s, want the first run's %s", err, second.ID(), first.ID())
	}

	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, _, err := devRootKey(bad, fresh); err == nil {
		t.Fatal("a file that holds no root key was accepted")
	}
	if b, _ := os.ReadFile(bad); string(b) != "not a key" {
		t.Fatal("a bad root key file was overwritten")
	}
}

func TestDev_RootKeyFileMustNotBeTheEnvCopy(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "env")
	err := runDev(t.Context(), devFlags{zones: 1, nodes: 1, apiPort: 0, envFile: env, rootKeyFile: devKeyFile(env), logLevel: "error"})
	if err == nil || !strings.Contains(err.Error(), "--keep-root-key") {
		t.Fatalf("err = %v, want the --keep-root-key refusal", err)
	}
}
