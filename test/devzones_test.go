package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyzone/keyzone/test/clustertest"
)

// devProcess is a running `keyzone dev`.
type devProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *syncBuffer
	envFile string
	// env holds the env file's KEY=value lines, in order.
	env     []string
	stopped bool
}

// startDev runs `keyzone dev ARGS --api-port 0 --env-file F --data-dir D`
// and waits until it says it is up and has written F.
func startDev(t *testing.T, bin, dir string, args ...string) *devProcess {
	t.Helper()
	return startDevAt(t, bin, dir, filepath.Join(dir, ".dev", "env"), filepath.Join(dir, "data"), args...)
}

// startDevAt is startDev with its env file and data dir given, so that
// two dev clusters can run side by side.
func startDevAt(t *testing.T, bin, dir, envFile, dataDir string, args ...string) *devProcess {
	t.Helper()
	args = append(append([]string{"dev"}, args...),
		"--api-port", "0", "--env-file", envFile, "--data-dir", dataDir)
	d := &devProcess{t: t, cmd: exec.Command(bin, args...), out: &syncBuffer{}, envFile: envFile}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !d.stopped {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	clustertest.WaitFor(t, 30*time.Second, "keyzone dev to be up and write its env file", func() bool {
		b, err := os.ReadFile(envFile)
		if err != nil || !strings.Contains(d.out.String(), "Press Ctrl-C") {
			return false
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		d.env = nil
		for sc.Scan() {
			d.env = append(d.env, sc.Text())
		}
		return len(d.env) >= 2
	})
	return d
}

// get returns the env file's value of name.
func (d *devProcess) get(name string) string {
	for _, kv := range d.env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// interrupt sends Ctrl-C and checks that dev exits with 0 within 30s,
// having removed its env file.
func (d *devProcess) interrupt() {
	t := d.t
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		d.stopped = true
		if err != nil {
			t.Fatalf("dev exited with %v after Ctrl-C:\n%s", err, d.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("dev did not stop within 30s of Ctrl-C:\n%s", d.out.String())
	}
	if _, err := os.Stat(d.envFile); !os.IsNotExist(err) {
		t.Fatalf("env file left behind after exit: %v", err)
	}
}

// readmeSection returns the shell code blocks of the README section
// titled title, in order.
func readmeSection(t *testing.T, title string) [][]string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
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

// runScript runs lines with bash in dir, as a user pastes them into one
// shell, and returns each line's output (stdout and stderr). A failing
// line fails the test.
func runScript(t *testing.T, dir string, env []string, lines []string) []string {
	t.Helper()
	var script strings.Builder
	script.WriteString("set -e\nexec 2>&1\n")
	for i, l := range lines {
		fmt.Fprintf(&script, "printf '\\n@@@ %d\\n'\n%s\n", i, l)
	}
	fmt.Fprintf(&script, "printf '\\n@@@ %d\\n'\n", len(lines))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	outs := make([]string, len(lines))
	rest := string(out)
	for i := 0; i <= len(lines); i++ {
		before, after, ok := strings.Cut(rest, fmt.Sprintf("\n@@@ %d\n", i))
		if !ok {
			if i == 0 {
				t.Fatalf("the README script did not start (%v):\n%s", err, out)
			}
			// set -e stopped the script at line i-1.
			t.Fatalf("README line failed (%v):\n  %s\n%s", err, lines[i-1], rest)
		}
		if i > 0 {
			outs[i-1] = before
		}
		rest = after
	}
	if err != nil {
		t.Fatalf("README script failed: %v\n%s", err, out)
	}
	return outs
}

// ciphertextVersion reads the key version from a base64 ciphertext
// envelope: format(1) | key id(16) | version(4, big-endian) | ...
func ciphertextVersion(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(ct) < 21 {
		t.Fatalf("%s is not a ciphertext: %v", path, err)
	}
	return binary.BigEndian.Uint32(ct[17:21])
}

// field returns the value of a "Name:  value" line of a key table.
func field(out, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:[ \t]*(.*)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// TestDevZones runs the README's multi-zone walk-through as a user would:
// `keyzone dev --zones 3` of the real binary in one process, then the
// README's commands, verbatim, in one bash shell, then Ctrl-C.
func TestDevZones(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash to run the README's commands")
	}
	blocks := readmeSection(t, "Multi-zone walk-through")
	if len(blocks) != 3 {
		t.Fatalf("the walk-through has %d shell blocks, want 3 (start, create and decrypt, rotate)", len(blocks))
	}
	const devLine = "./bin/keyzone dev --zones 3 --env-file .dev/env"
	if !slices.Contains(blocks[0], devLine) {
		t.Fatalf("the walk-through's first block %q does not run %q", blocks[0], devLine)
	}

	// The README runs from the repository root: give it a directory with
	// bin/keyzone and the env file in .dev/env.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildKeyzone(t)
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "keyzone")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	dev := startDev(t, bin, dir, "--zones", "3")
	t.Logf("dev with 3 zones up in %s", time.Since(start).Round(time.Millisecond))
	for _, z := range []string{"A", "B", "C"} {
		if !strings.HasPrefix(dev.get("KEYZONE_ADDR_ZONE_"+z), "http://127.0.0.1:") {
			t.Fatalf("env file has no KEYZONE_ADDR_ZONE_%s:\n%s", z, strings.Join(dev.env, "\n"))
		}
	}
	if a := dev.get("KEYZONE_ADDR"); a != dev.get("KEYZONE_ADDR_ZONE_A") {
		t.Fatalf("KEYZONE_ADDR is %q, want zone-a's first node %q", a, dev.get("KEYZONE_ADDR_ZONE_A"))
	}
	if dev.get("KEYZONE_TOKEN") == "" {
		t.Fatalf("env file has no KEYZONE_TOKEN")
	}
	for _, z := range []string{"zone-a", "zone-b", "zone-c"} {
		if strings.Count(dev.out.String(), "node "+z[len(z)-1:]) != 3 {
			t.Fatalf("dev did not print three nodes of %s:\n%s", z, dev.out.String())
		}
	}

	// The user's shell: no KEYZONE_* of ours leaks in.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYZONE_") {
			env = append(env, kv)
		}
	}
	lines := append(append([]string{}, blocks[1]...), blocks[2]...)
	outs := runScript(t, dir, env, lines)
	out := func(prefix string, nth int) string {
		t.Helper()
		seen := 0
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				if seen == nth {
					return outs[i]
				}
				seen++
			}
		}
		t.Fatalf("the walk-through has no command %q (#%d)", prefix, nth+1)
		return ""
	}
	const decryptC = "KEYZONE_ADDR=$KEYZONE_ADDR_ZONE_C ./bin/keyzone decrypt --context app=orders < "

	// zone status in zone-a: three zones of three live nodes.
	zs := out("./bin/keyzone zone status", 0)
	for _, z := range []string{"zone-a", "zone-b", "zone-c"} {
		if !regexp.MustCompile(`(?m)^` + z + `\s+\*?\s*3\s`).MatchString(zs) {
			t.Fatalf("zone status does not show %s with 3 nodes:\n%s", z, zs)
		}
	}
	// Decrypt in zone-c right after the key was created in zone-a.
	if got := out(decryptC+"v1.b64", 0); got != "order #1001\n" {
		t.Fatalf("decrypt in zone-c printed %q, want %q", got, "order #1001\n")
	}
	if v := ciphertextVersion(t, filepath.Join(dir, "v1.b64")); v != 1 {
		t.Fatalf("the first ciphertext is of version %d, want 1", v)
	}
	// The key in zone-c is a replica of zone-a's.
	kc := out("KEYZONE_ADDR=$KEYZONE_ADDR_ZONE_C ./bin/keyzone key get", 0)
	if field(kc, "Primary zone") != "zone-a" || field(kc, "Replica zones") != "zone-b, zone-c" || field(kc, "Replica of change seq") == "" {
		t.Fatalf("key get in zone-c:\n%s", kc)
	}
	// Rotation: the new version waits for zone-b and zone-c (or, if they
	// were quick, already encrypts).
	rot := out("./bin/keyzone key rotate", 0)
	switch {
	case field(rot, "Current version") == "1" && field(rot, "Pending version") == "2":
		if field(rot, "Waiting for zones") != "zone-b, zone-c" {
			t.Fatalf("rotate waits for %q, want zone-b, zone-c:\n%s", field(rot, "Waiting for zones"), rot)
		}
	case field(rot, "Current version") == "2" && field(rot, "Pending version") == "":
		t.Logf("rotate answered with version 2 already encrypting")
	default:
		t.Fatalf("rotate printed:\n%s", rot)
	}
	kg := out("./bin/keyzone key get", 0)
	v2 := ciphertextVersion(t, filepath.Join(dir, "v2.b64"))
	t.Logf("key get after rotate: current %s, pending %q; the next ciphertext is of version %d",
		field(kg, "Current version"), field(kg, "Pending version"), v2)
	if field(kg, "Current version") == "2" && v2 != 2 {
		t.Fatalf("key get showed version 2 current, yet the next encrypt used version %d", v2)
	}
	// Old and new ciphertexts decrypt in zone-c.
	if got := out(decryptC+"v1.b64", 1); got != "order #1001\n" {
		t.Fatalf("decrypt of the old ciphertext in zone-c printed %q", got)
	}
	if got := out(decryptC+"v2.b64", 0); got != "order #1002\n" {
		t.Fatalf("decrypt of the new ciphertext in zone-c printed %q", got)
	}
	zs = out("./bin/keyzone zone status", 1)
	for _, z := range []string{"zone-b", "zone-c"} {
		if !regexp.MustCompile(`(?m)^` + z + `\s+3\s`).MatchString(zs) {
			t.Fatalf("zone status at the end does not show %s:\n%s", z, zs)
		}
	}
	t.Logf("walk-through done %s after start", time.Since(start).Round(time.Millisecond))

	dev.interrupt()
	if strings.Contains(dev.out.String(), "[ERROR]") {
		t.Errorf("dev logged errors:\n%s", dev.out.String())
	}
}
