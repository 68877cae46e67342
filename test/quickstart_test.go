package test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyzone/keyzone/test/clustertest"
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
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".dev", "env")
	dataDir := filepath.Join(dir, "data")

	dev := exec.Command(bin, "dev", "--api-port", "0", "--env-file", envFile, "--data-dir", dataDir)
	devOut := &syncBuffer{}
	dev.Stdout, dev.Stderr = devOut, devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			dev.Process.Kill()
			dev.Wait()
		}
	})
	var env []string
	clustertest.WaitFor(t, 30*time.Second, "the dev zone to print its address", func() bool {
		b, err := os.ReadFile(envFile)
		if err != nil || !strings.Contains(devOut.String(), "Press Ctrl-C") {
			return false
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		env = nil
		for sc.Scan() {
			env = append(env, sc.Text())
		}
		return len(env) >= 2
	})

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
	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- dev.Wait() }()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("dev exited with %v after Ctrl-C:\n%s", err, devOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("dev did not stop within 30s of Ctrl-C:\n%s", devOut.String())
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Fatalf("env file left behind after exit: %v", err)
	}
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
