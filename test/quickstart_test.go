package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildKeyzone builds the keyzone binary once per test binary run.
func buildKeyzone(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keyzone")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/keyzone")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestQuickStart runs the README's quick start as a user would: the real
// binary's dev zone in one process, the CLI round trip in others, then
// Ctrl-C.
func TestQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildKeyzone(t)
	dev := startDev(t, bin, t.TempDir())
	env := dev.env
	// Two zones by default; the quick start talks to zone-a.
	if a := dev.get("KEYZONE_ADDR"); a == "" || a != dev.get("KEYZONE_ADDR_ZONE_A") || dev.get("KEYZONE_ADDR_ZONE_B") == "" || dev.get("KEYZONE_ADDR_ZONE_C") != "" {
		t.Fatalf("env file of a default dev:\n%s", strings.Join(env, "\n"))
	}

	run := func(stdin []byte, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("keyzone %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}

	key := strings.TrimSpace(run(nil, "key", "create", "--name", "demo", "-q"))
	if len(key) != 36 {
		t.Fatalf("key create -q printed %q, want a key id", key)
	}
	ct := run([]byte("hello, keyzone"), "encrypt", key, "--context", "app=demo")
	if pt := run([]byte(ct), "decrypt", "--context", "app=demo"); pt != "hello, keyzone" {
		t.Fatalf("decrypt printed %q, want %q", pt, "hello, keyzone")
	}
	if out := run(nil, "key", "rotate", key); !strings.Contains(out, "Current version:  2") {
		t.Fatalf("rotate printed:\n%s", out)
	}
	if pt := run([]byte(ct), "decrypt", "--context", "app=demo"); pt != "hello, keyzone" {
		t.Fatalf("decrypt after rotate printed %q", pt)
	}
	if out := run(nil, "cluster", "status"); strings.Count(out, "127.0.0.1") < 6 || !strings.Contains(out, "leader") {
		t.Fatalf("cluster status printed:\n%s", out)
	}

	// Ctrl-C stops every node cleanly.
	dev.interrupt()
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
