package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyzone/keyzone/test/clustertest"
)

// lockedBuffer is a bytes.Buffer safe for a writing process and a
// reading test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// readmeBlocks returns the shell code blocks of the README section titled
// title, in order, without blank lines.
func readmeBlocks(t *testing.T, title string) [][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README has no section %q", title)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var blocks [][]string
	var cur []string
	in := false
	for line := range strings.Lines(sec) {
		line = strings.TrimRight(line, "\n")
		switch {
		case !in && line == "```sh":
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, cur)
		case in && strings.TrimSpace(line) != "":
			cur = append(cur, line)
		}
	}
	return blocks
}

// scriptLine is what one pasted line printed (stdout and stderr) and its
// exit status.
type scriptLine struct {
	out    string
	status int
}

// runLines runs lines with bash in dir, as a user pastes them into one
// shell: a failing line does not stop the others, and each line's output
// and exit status are returned.
func runLines(t *testing.T, dir string, env, lines []string) []scriptLine {
	t.Helper()
	var script strings.Builder
	script.WriteString("exec 2>&1\nprintf '\\n@@@ start\\n'\n")
	for i, l := range lines {
		fmt.Fprintf(&script, "%s\nprintf '\\n@@@ %d %%d\\n' $?\n", l, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README script failed: %v\n%s", err, out)
	}
	_, rest, ok := strings.Cut(string(out), "\n@@@ start\n")
	if !ok {
		t.Fatalf("the README script did not start:\n%s", out)
	}
	res := make([]scriptLine, len(lines))
	marker := regexp.MustCompile(`\n@@@ (\d+) (\d+)\n`)
	for i := range lines {
		m := marker.FindStringSubmatchIndex(rest)
		if m == nil {
			t.Fatalf("README line %d did not finish:\n  %s\n%s", i, lines[i], rest)
		}
		n, _ := strconv.Atoi(rest[m[2]:m[3]])
		status, _ := strconv.Atoi(rest[m[4]:m[5]])
		if n != i {
			t.Fatalf("README script out of step: marker %d after line %d", n, i)
		}
		res[i] = scriptLine{out: rest[:m[0]], status: status}
		rest = rest[m[1]:]
	}
	return res
}

// TestREADME_Tenancy runs the README's "Organizations and tokens" section,
// verbatim, against `keyzone dev --zones 3` of the real binary, as a user
// would: the dev deployment in one process, the section's lines pasted into
// one bash shell, then Ctrl-C.
func TestREADME_Tenancy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs nine nodes")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash to run the README's commands")
	}
	blocks := readmeBlocks(t, "Organizations and tokens")
	if len(blocks) != 1 {
		t.Fatalf("the section has %d shell blocks, want 1", len(blocks))
	}
	lines := blocks[0]

	// The README runs from the repository root, with bin/keyzone and the
	// dev deployment's env file in .dev/env.
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "keyzone")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// As the README starts it, on free ports and a data dir of the test's.
	dev := exec.Command(bin, "dev", "--zones", "3", "--env-file", ".dev/env", "--api-port", "0", "--data-dir", filepath.Join(dir, "data"))
	dev.Dir = dir
	devOut := &lockedBuffer{}
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
	start := time.Now()
	clustertest.WaitFor(t, 3*time.Minute, "keyzone dev to be up and write .dev/env", func() bool {
		_, err := os.Stat(filepath.Join(dir, ".dev", "env"))
		return err == nil && strings.Contains(devOut.String(), "Press Ctrl-C")
	})
	t.Logf("dev with 3 zones and the demo organization up in %s", time.Since(start).Round(time.Millisecond))

	// The user's shell: no KEYZONE_* of ours leaks in.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYZONE_") {
			env = append(env, kv)
		}
	}
	res := runLines(t, dir, env, lines)
	line := func(prefix string) scriptLine {
		t.Helper()
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return res[i]
			}
		}
		t.Fatalf("the section has no line %q", prefix)
		return scriptLine{}
	}
	// The refusals the README announces, and nothing else failing.
	refusals := map[string]string{
		`KEYZONE_TOKEN=$APP ./bin/keyzone key rotate "$KEY"`: "Error: keyzone: 403 forbidden",
		`./bin/keyzone key get "$KEY"`:                       "Error: keyzone: 404 key_not_found",
		`./bin/keyzone decrypt < card.b64`:                   "Error: keyzone: 422 decrypt_failed",
	}
	for i, l := range lines {
		cmd, _, _ := strings.Cut(l, "  #")
		cmd = strings.TrimSpace(cmd)
		if want, ok := refusals[cmd]; ok {
			if res[i].status == 0 || !strings.Contains(res[i].out, want) || !strings.Contains(l, want) {
				t.Errorf("line %q: exit %d, printed %q; want it refused with %q, as its comment says", l, res[i].status, res[i].out, want)
			}
			delete(refusals, cmd)
			continue
		}
		if res[i].status != 0 {
			t.Errorf("line %q failed (exit %d):\n%s", l, res[i].status, res[i].out)
		}
	}
	for cmd := range refusals {
		t.Errorf("the section has no line %q", cmd)
	}
	if t.Failed() {
		t.FailNow()
	}

	if out := line("./bin/keyzone whoami").out; !regexp.MustCompile(`(?m)^Role:\s+org-admin$`).MatchString(out) {
		t.Errorf("whoami with the env file's KEYZONE_TOKEN:\n%s", out)
	}
	if out := line("KEYZONE_TOKEN=$APP ./bin/keyzone decrypt < card.b64; echo").out; out != "card 4111 1111 1111 1111\n" {
		t.Errorf("decrypt with the crypto-user: got %q", out)
	}
	ct, err := os.ReadFile(filepath.Join(dir, "card.b64"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(ct))); err != nil {
		t.Errorf("card.b64 is no base64 ciphertext: %q", ct)
	}
	if out := strings.TrimSpace(line("echo -n 'hello' | KEYZONE_TOKEN=$KEYZONE_CRYPTO_TOKEN").out); out == "" || strings.Contains(out, "Error") {
		t.Errorf("encrypt under demo's default key: got %q", out)
	}
	tokens := line("KEYZONE_TOKEN=$ACME_ADMIN ./bin/keyzone token list").out
	if !strings.Contains(tokens, "org-admin") || !strings.Contains(tokens, "crypto-user") || !strings.Contains(tokens, "payments-app") || strings.Contains(tokens, "kzt_") {
		t.Errorf("token list:\n%s", tokens)
	}
	rows := func(out string) [][]string {
		var rs [][]string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 9 && f[0] != "TIME" {
				rs = append(rs, f)
			}
		}
		return rs
	}
	has := func(rs [][]string, role, op, status, outcome string) bool {
		for _, r := range rs {
			if r[3] == role && r[4] == op && r[7] == status && r[8] == outcome {
				return true
			}
		}
		return false
	}
	acme := rows(line(`./bin/keyzone audit "$KEYZONE_AUDIT_DIR/a1.log" --org`).out)
	for _, want := range [][4]string{
		{"org-admin", "create-key", "201", "success"},
		{"org-admin", "create-token", "201", "success"},
		{"crypto-user", "encrypt", "200", "success"},
		{"crypto-user", "decrypt", "200", "success"},
		{"crypto-user", "rotate-key", "403", "denied"},
	} {
		if !has(acme, want[0], want[1], want[2], want[3]) {
			t.Errorf("audit --org acme: no %v row in\n%s", want, line(`./bin/keyzone audit "$KEYZONE_AUDIT_DIR/a1.log" --org`).out)
		}
	}
	for _, r := range acme {
		if r[1] != acme[0][1] {
			t.Errorf("audit --org acme shows another organization's row: %v", r)
		}
	}
	refused := rows(line(`./bin/keyzone audit "$KEYZONE_AUDIT_DIR/a1.log" --status 4xx`).out)
	for _, want := range [][4]string{
		{"crypto-user", "rotate-key", "403", "denied"},
		{"org-admin", "get-key", "404", "refused"},
		{"org-admin", "decrypt", "422", "refused"},
	} {
		if !has(refused, want[0], want[1], want[2], want[3]) {
			t.Errorf("audit --status 4xx: no %v row", want)
		}
	}
	for _, r := range refused {
		if !strings.HasPrefix(r[7], "4") {
			t.Errorf("audit --status 4xx shows status %s", r[7])
		}
	}

	// Ctrl-C stops every node and removes the env file.
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
		t.Fatalf("dev did not stop within 30s of Ctrl-C")
	}
	if _, err := os.Stat(filepath.Join(dir, ".dev", "env")); !os.IsNotExist(err) {
		t.Errorf("env file left behind after exit: %v", err)
	}
}
