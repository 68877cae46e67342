//go:build e2e

// Package e2e drives the docker-compose environment of the repository root
// (nine containers: three zones of three nodes) from Go. Run it with
// `make e2e`, which builds the image first; it starts and removes its own
// compose project and never touches `make up`'s.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/client/verify"
)

// projectPrefix names every compose project this suite makes; leftovers of
// a run that could not clean up (killed go test) are removed by the next.
const projectPrefix = "kze2e"

var (
	zones     = []string{"zone-a", "zone-b", "zone-c"}
	zoneNodes = map[string][]string{
		"zone-a": {"a1", "a2", "a3"},
		"zone-b": {"b1", "b2", "b3"},
		"zone-c": {"c1", "c2", "c3"},
	}
	// hostPortSuffix is each node's published port after the KZ_PORT prefix.
	hostPortSuffix = map[string]string{
		"a1": "00", "a2": "01", "a3": "02",
		"b1": "10", "b2": "11", "b3": "12",
		"c1": "20", "c2": "21", "c3": "22",
	}
)

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// env is one running compose project.
type env struct {
	t       *testing.T
	project string
	compose []string // the compose command and its -f argument
	vars    []string // KZ_* settings of the compose file
	port    string
	// operator is the cluster operator's token (the compose file's
	// KEYZONE_OPERATOR_TOKEN_FILE): organizations and the cluster routes
	// (digests, verify). token is an org-admin token of the suite's own
	// organization, made by ready: every key and crypto call.
	operator string
	token    string
	org      wire.Organization
	clients  map[string]*client.Client // the org-admin's
	probes   map[string]*client.Client // the org-admin's, short timeout: for polling while nodes are paused or cut off
	ops      map[string]*client.Client // the operator's
	ids      map[string]string         // container id by service, cached: each compose call costs a second
}

func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// run runs a command with the compose settings in its environment and
// returns its combined output.
func (e *env) run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), e.vars...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// composeStdout runs a compose command and returns its standard output
// alone: docker compose v2 warns on stderr (about the file's version key,
// which v1 needs), and ids parsed from the output must not take that in.
func (e *env) composeStdout(timeout time.Duration, args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append(append([]string{}, e.compose[1:]...), "-p", e.project), args...)
	cmd := exec.CommandContext(ctx, e.compose[0], full...)
	cmd.Env = append(os.Environ(), e.vars...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("%s %s: %v\n%s%s", e.compose[0], strings.Join(full, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func (e *env) composeRun(timeout time.Duration, args ...string) (string, error) {
	return e.composeProject(e.project, timeout, args...)
}

func (e *env) composeProject(project string, timeout time.Duration, args ...string) (string, error) {
	full := append(append([]string{}, e.compose[1:]...), "-p", project)
	return e.run(timeout, e.compose[0], append(full, args...)...)
}

func (e *env) mustCompose(timeout time.Duration, args ...string) string {
	e.t.Helper()
	out, err := e.composeRun(timeout, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) mustDocker(timeout time.Duration, args ...string) string {
	e.t.Helper()
	out, err := e.run(timeout, "docker", args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// container returns the id of a service's container.
func (e *env) container(service string) string {
	e.t.Helper()
	if id, ok := e.ids[service]; ok {
		return id
	}
	id := strings.TrimSpace(e.composeStdout(time.Minute, "ps", "-q", service))
	if id == "" {
		e.t.Fatalf("no container for %s", service)
	}
	e.ids[service] = id
	return id
}

// startEnv brings a fresh project up and registers its removal.
func startEnv(t *testing.T) *env {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("no docker client: the e2e suite needs a Docker engine")
	}
	root := repoRoot(t)
	compose := strings.Fields(getenv("KZ_COMPOSE", "docker-compose"))
	image := getenv("KZ_IMAGE", "keyzone:dev")

	secrets := t.TempDir()
	rek := make([]byte, 32)
	tok := make([]byte, 24)
	suffix := make([]byte, 4)
	for _, b := range [][]byte{rek, tok, suffix} {
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
	}
	operator := base64.RawURLEncoding.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(secrets, "rek.b64"), []byte(base64.StdEncoding.EncodeToString(rek)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "token"), []byte(operator+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	e := &env{
		t:        t,
		project:  projectPrefix + hex.EncodeToString(suffix),
		port:     getenv("KZ_E2E_PORT", "183"),
		operator: operator,
		clients:  map[string]*client.Client{},
		probes:   map[string]*client.Client{},
		ops:      map[string]*client.Client{},
		ids:      map[string]string{},
	}
	e.compose = append(compose, "-f", filepath.Join(root, "docker-compose.yml"))
	e.vars = []string{
		"KZ_IMAGE=" + image,
		"KZ_SUBNET=" + getenv("KZ_E2E_SUBNET", "10.214"),
		"KZ_PORT=" + e.port,
		"KZ_SECRETS=" + secrets,
		// Keys the nemesis deletes for good are purged within the run.
		"KZ_MIN_DELETION_WINDOW=" + purgeWindow.String(),
	}
	if _, err := e.run(time.Minute, "docker", "image", "inspect", image); err != nil {
		t.Fatalf("image %s is missing: run `make image` (or `make e2e`) first\n%v", image, err)
	}
	e.removeStale()

	t.Logf("compose project %s (%s)", e.project, strings.Join(e.vars[:3], " "))
	active.add(e)
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := e.composeRun(2*time.Minute, "logs", "--no-color", "--tail", "40"); err == nil {
				t.Logf("last logs of every node:\n%s", out)
			}
		}
		if err := e.down(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		active.remove(e)
	})
	e.mustCompose(5*time.Minute, "up", "-d")

	for node, sfx := range hostPortSuffix {
		c, err := client.New("http://127.0.0.1:"+e.port+sfx, operator, client.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		e.ops[node] = c
	}
	return e
}

// nodeAddr is the node's API address on the host.
func (e *env) nodeAddr(node string) string {
	return "http://127.0.0.1:" + e.port + hostPortSuffix[node]
}

// e2eOrganization is the organization the suite's workload runs as: no
// rate limit, a quota no run reaches.
const e2eOrganization = "e2e"

// ready waits until the nine nodes are healthy, then creates the suite's
// organization and an org-admin token of it with the operator token in
// zone-a (the home zone), and waits until the token authenticates on
// every node of every zone; e.clients and e.probes then use it. It also
// checks that the compose file's one-shot demo service did its job and
// exited 0.
func (e *env) ready(timeout time.Duration) {
	e.t.Helper()
	e.waitHealthy(timeout, allNodes()...)
	ctx := context.Background()
	op := e.ops["a1"]
	eventually(e.t, 2*time.Minute, "create organization "+e2eOrganization+" in zone-a", func() error {
		o, err := op.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: e2eOrganization, KeyQuota: 100_000_000, RateLimit: -1})
		if ae, ok := errors.AsType[*client.Error](err); ok && ae.Code == wire.CodeOrganizationExists {
			// A retry of a creation whose answer was lost.
			o, err = op.GetOrganization(ctx, e2eOrganization)
		}
		e.org = o
		return err
	})
	var tok wire.CreatedToken
	eventually(e.t, time.Minute, "create an org-admin token", func() error {
		var err error
		tok, err = op.CreateToken(ctx, e.org.ID, wire.CreateTokenRequest{Role: "org-admin", Description: "e2e suite"})
		return err
	})
	e.token = tok.Secret
	d := eventually(e.t, time.Minute, "the org-admin token to authenticate on every node", func() error {
		for _, n := range allNodes() {
			c, err := client.New(e.nodeAddr(n), e.token, client.WithTimeout(2*time.Second))
			if err != nil {
				return err
			}
			if who, err := c.WhoAmI(ctx); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			} else if who.Organization != e.org.ID || who.Role != "org-admin" {
				return fmt.Errorf("%s: the token is %+v", n, who)
			}
		}
		return nil
	})
	e.t.Logf("organization %s (%s) and its org-admin token ready in every zone %v after the token was made",
		e.org.Name, e.org.ID, d.Round(time.Millisecond))
	for _, n := range allNodes() {
		c, err := client.New(e.nodeAddr(n), e.token, client.WithTimeout(10*time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		e.clients[n] = c
		p, err := client.New(e.nodeAddr(n), e.token, client.WithTimeout(2*time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		e.probes[n] = p
	}
	// The operator token is the cluster's, not an organization's.
	if _, err := e.ops["b1"].ListKeys(ctx, client.ListKeysOptions{}); err == nil {
		e.t.Error("the operator token lists keys, want 403")
	} else if ae, ok := errors.AsType[*client.Error](err); !ok || ae.StatusCode != 403 {
		e.t.Errorf("the operator token lists keys: %v, want 403", err)
	}
	e.checkDemo(2 * time.Minute)
}

// checkDemo waits until the one-shot demo service has exited and checks
// that it exited 0 having created the organization "demo" with its
// tokens. A container that exited 0 on purpose is not a node that
// stopped: checkNoRestartsOrPanics looks at the nine nodes only.
func (e *env) checkDemo(timeout time.Duration) {
	e.t.Helper()
	// By label: `compose ps` of v2 lists running containers only.
	id := e.mustDocker(time.Minute, "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+e.project,
		"--filter", "label=com.docker.compose.service=demo")
	if id == "" || strings.ContainsAny(id, " \n") {
		e.t.Fatalf("the demo service's container: %q, want one", id)
	}
	var st string
	eventually(e.t, timeout, "the demo service to exit", func() error {
		st = e.mustDocker(time.Minute, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id)
		if strings.HasPrefix(st, "exited ") {
			return nil
		}
		return fmt.Errorf("demo is %s", st)
	})
	logs, _ := e.run(time.Minute, "docker", "logs", id)
	if st != "exited 0" {
		e.t.Fatalf("the demo service: %s, want exited 0:\n%s", st, logs)
	}
	demo, err := e.ops["a2"].GetOrganization(context.Background(), "demo")
	if err != nil {
		e.t.Fatalf("the organization the demo service made: %v\n%s", err, logs)
	}
	toks, err := e.ops["a2"].ListTokens(context.Background(), demo.ID)
	if err != nil || len(toks.Tokens) < 2 {
		e.t.Errorf("the demo organization's tokens: %+v, %v; want an org-admin and a crypto-user", toks.Tokens, err)
	}
	if !strings.Contains(logs, "KEYZONE_TOKEN=") || !strings.Contains(logs, "KEYZONE_CRYPTO_TOKEN=") {
		e.t.Errorf("the demo service did not print the tokens:\n%s", logs)
	}
}

// down removes the project: containers (paused ones unpaused first, as
// stopping a frozen process waits for nothing), networks and volumes.
func (e *env) down() error {
	if out, err := e.run(time.Minute, "docker", "ps", "-q", "--filter", "status=paused",
		"--filter", "label=com.docker.compose.project="+e.project); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = e.run(time.Minute, "docker", "unpause", id)
		}
	}
	_, err := e.composeRun(5*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "5")
	return err
}

// active holds the projects that are up, so that a run interrupted by a
// signal removes them. A run killed outright (the go test timeout) leaves
// them to the next run's removeStale and to `make e2e`'s clean-up.
var active = &projects{m: map[*env]bool{}}

type projects struct {
	mu sync.Mutex
	m  map[*env]bool
}

func (p *projects) add(e *env)    { p.mu.Lock(); p.m[e] = true; p.mu.Unlock() }
func (p *projects) remove(e *env) { p.mu.Lock(); delete(p.m, e); p.mu.Unlock() }

// TestMain removes the projects still up when the run is interrupted.
func TestMain(m *testing.M) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "e2e: %v: removing the compose projects still up\n", s)
		active.mu.Lock()
		for e := range active.m {
			if err := e.down(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: removing %s: %v\n", e.project, err)
			}
		}
		os.Exit(1)
	}()
	os.Exit(m.Run())
}

// removeStale removes the projects of earlier runs that could not clean
// up after themselves (go test killed by its timeout or a signal).
func (e *env) removeStale() {
	out, err := e.run(time.Minute, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}`)
	if err != nil {
		e.t.Logf("listing stale projects: %v", err)
		return
	}
	seen := map[string]bool{}
	for _, p := range strings.Fields(out) {
		if !strings.HasPrefix(p, projectPrefix) || seen[p] {
			continue
		}
		seen[p] = true
		e.t.Logf("removing stale compose project %s", p)
		if _, err := e.composeProject(p, 5*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "1"); err != nil {
			e.t.Logf("removing %s: %v", p, err)
		}
	}
}

// waitHealthy waits until the services' containers report healthy.
func (e *env) waitHealthy(timeout time.Duration, services ...string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var pending []string
		for _, s := range services {
			st := e.mustDocker(time.Minute, "inspect", "-f",
				"{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", e.container(s))
			switch {
			case st == "running healthy":
			case strings.HasPrefix(st, "running"):
				pending = append(pending, s+": "+st)
			default:
				e.t.Fatalf("container %s is %s", s, st)
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("not healthy after %v: %v", timeout, pending)
		}
		time.Sleep(time.Second)
	}
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = f(); err == nil {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not done after %v: %v", what, timeout, err)
	return 0
}

func allNodes() []string {
	var out []string
	for _, z := range zones {
		out = append(out, zoneNodes[z]...)
	}
	return out
}

// zoneIP is the node's fixed address on its zone's network.
func (e *env) zoneIP(node string) string {
	subnet := getenv("KZ_E2E_SUBNET", "10.214")
	z := int(node[0]-'a') + 1
	return fmt.Sprintf("%s.%d.%d%c", subnet, z, z, node[1])
}

// verify runs `keyzone cluster verify --wait d -o json` in a1's container,
// where every zone's advertised address resolves, with the operator token
// (digests are the operator's), and returns its report; err is set when
// the command fails (zones differ or are unreachable).
func (e *env) verify(d time.Duration) (verify.Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	// The token goes through the environment, not the command line.
	cmd := exec.CommandContext(ctx, "docker", "exec", "-e", "KEYZONE_OPERATOR_TOKEN", "-e", "KEYZONE_ADDR=http://127.0.0.1:8200",
		e.container("a1"), "/keyzone", "cluster", "verify", "--wait", d.String(), "-o", "json")
	cmd.Env = append(os.Environ(), "KEYZONE_OPERATOR_TOKEN="+e.operator)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var rep verify.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil && err == nil {
		err = fmt.Errorf("verify output %q: %w", stdout.String(), jerr)
	}
	return rep, err
}
