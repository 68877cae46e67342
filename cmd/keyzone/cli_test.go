package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// cliTestToken is an org-admin token of the fake's organization
// "default"; cliOperatorToken the cluster operator's.
const (
	cliTestToken     = "cli-test-token"
	cliOperatorToken = "cli-test-operator-token"
)

type cliTestEnv struct {
	keys    *apitest.Keys
	cluster *apitest.Cluster
	tenants *apitest.Tenants
	url     string
	env     map[string]string
}

type cliLogWriter struct{ t testing.TB }

func (w cliLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newCLITestEnv(t *testing.T) *cliTestEnv {
	t.Helper()
	e := &cliTestEnv{keys: apitest.NewKeys(), cluster: apitest.NewCluster(), tenants: apitest.NewTenants()}
	e.tenants.AddToken(cliTestToken, fsm.DefaultOrganization, fsm.RoleOrgAdmin)
	h, err := api.NewRouter(api.Config{
		Keys: e.keys, Cluster: e.cluster, Tenants: e.tenants, OperatorToken: cliOperatorToken,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: cliLogWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.env = map[string]string{"KEYZONE_ADDR": srv.URL, "KEYZONE_TOKEN": cliTestToken, "KEYZONE_OPERATOR_TOKEN": cliOperatorToken}
	return e
}

// run executes the client commands in-process, as main would, with stdin
// and the environment of e; it returns stdout and the command's error.
func (e *cliTestEnv) run(t *testing.T, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	root := &cobra.Command{Use: "keyzone", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newClientCommands(func(k string) string { return e.env[k] })...)
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetIn(bytes.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(context.Background())
	if stderr.Len() > 0 {
		t.Logf("stderr of %v: %s", args, stderr.String())
	}
	return stdout.Bytes(), err
}

// mustRun is run that fails the test on error.
func (e *cliTestEnv) mustRun(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	out, err := e.run(t, stdin, args...)
	if err != nil {
		t.Fatalf("keyzone %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func cliJSON[T any](t *testing.T, out []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("-o json output %q: %v", out, err)
	}
	return v
}

func (e *cliTestEnv) createKey(t *testing.T, name string) wire.Key {
	t.Helper()
	return cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "create", "--name", name, "-o", "json"))
}

func TestCLI_EncryptDecryptRoundTrip(t *testing.T) {
	e := newCLITestEnv(t)
	k := e.createKey(t, "app")
	plaintext := []byte("binary \x00\xff\n payload\n\n")

	out := e.mustRun(t, plaintext, "encrypt", k.ID, "--context", "app=billing", "--context", "env=prod=eu")
	if !bytes.HasSuffix(out, []byte("\n")) || bytes.Count(out, []byte("\n")) != 1 {
		t.Fatalf("encrypt output: got %q, want one base64 line", out)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(out))); err != nil {
		t.Fatalf("encrypt output is not base64: %v", err)
	}
	if p := e.keys.LastCall().Params.(keys.EncryptParams); p.Context.Map["env"] != "prod=eu" || !bytes.Equal(p.Plaintext, plaintext) {
		t.Errorf("encrypt params: got %+v", p)
	}

	got := e.mustRun(t, out, "decrypt", "--context", "env=prod=eu", "--context", "app=billing")
	if !bytes.Equal(got, plaintext) {
		t.Errorf("decrypt: got %q, want %q", got, plaintext)
	}
	// Surrounding whitespace and wrapped lines are fine.
	ct := strings.TrimSpace(string(out))
	wrapped := "  \n" + ct[:10] + "\n" + ct[10:] + "\r\n\n"
	if got := e.mustRun(t, []byte(wrapped), "decrypt", "--context", "app=billing", "--context", "env=prod=eu", "--key-id", k.ID); !bytes.Equal(got, plaintext) {
		t.Errorf("decrypt of wrapped input: got %q", got)
	}

	_, err := e.run(t, out, "decrypt", "--context", "app=other")
	if err == nil || err.Error() != "keyzone: 422 decrypt_failed: decryption failed" {
		t.Errorf("wrong context: got %v", err)
	}

	// --in reads a file.
	dir := t.TempDir()
	ptFile := filepath.Join(dir, "pt")
	if err := os.WriteFile(ptFile, plaintext, 0o600); err != nil {
		t.Fatal(err)
	}
	out = e.mustRun(t, nil, "encrypt", k.ID, "--in", ptFile)
	ctFile := filepath.Join(dir, "ct")
	if err := os.WriteFile(ctFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := e.mustRun(t, nil, "decrypt", "--in", ctFile); !bytes.Equal(got, plaintext) {
		t.Errorf("decrypt --in: got %q", got)
	}
}

func TestCLI_JSONOutput(t *testing.T) {
	e := newCLITestEnv(t)
	k := e.createKey(t, "k")
	if k.Name != "k" || k.State != "enabled" {
		t.Errorf("create: got %+v", k)
	}
	if got := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "get", k.ID, "-o", "json")); got.ID != k.ID {
		t.Errorf("get: got %+v", got)
	}
	if got := cliJSON[wire.ListKeysResponse](t, e.mustRun(t, nil, "key", "list", "-o", "json")); len(got.Keys) != 1 {
		t.Errorf("list: got %+v", got)
	}
	if got := cliJSON[wire.KeyVersions](t, e.mustRun(t, nil, "key", "versions", k.ID, "-o", "json")); got.CurrentVersion != 1 {
		t.Errorf("versions: got %+v", got)
	}
	if got := cliJSON[wire.ClusterStatus](t, e.mustRun(t, nil, "cluster", "status", "-o", "json")); got.Leader != "node-1" {
		t.Errorf("cluster status: got %+v", got)
	}
	enc := cliJSON[wire.EncryptResponse](t, e.mustRun(t, []byte("hi"), "encrypt", k.ID, "-o", "json"))
	if enc.KeyID != k.ID || enc.KeyVersion != 1 {
		t.Errorf("encrypt: got %+v", enc)
	}
	ct := []byte(base64.StdEncoding.EncodeToString(enc.Ciphertext))
	if got := cliJSON[wire.DecryptResponse](t, e.mustRun(t, ct, "decrypt", "-o", "json")); string(got.Plaintext) != "hi" {
		t.Errorf("decrypt: got %+v", got)
	}
	if got := cliJSON[wire.ReEncryptResponse](t, e.mustRun(t, ct, "re-encrypt", "-o", "json")); got.KeyID != k.ID {
		t.Errorf("re-encrypt: got %+v", got)
	}
	dk := cliJSON[wire.GenerateDataKeyResponse](t, e.mustRun(t, nil, "generate-data-key", k.ID, "-o", "json", "--key-size", "128"))
	if len(dk.Plaintext) != 16 {
		t.Errorf("generate-data-key: got %+v", dk)
	}
	// Indented, one object.
	if out := e.mustRun(t, nil, "key", "get", k.ID, "--output=json"); !bytes.HasPrefix(out, []byte("{\n  \"id\": ")) {
		t.Errorf("json is not indented: %q", out)
	}
	if _, err := e.run(t, nil, "key", "get", k.ID, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), `--output "yaml": want table or json`) {
		t.Errorf("-o yaml: got %v", err)
	}
}

func TestCLI_ContextFlagErrors(t *testing.T) {
	e := newCLITestEnv(t)
	k := e.createKey(t, "k")
	before := len(e.keys.Calls())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"encrypt", k.ID, "--context", "novalue"}, `invalid --context "novalue": want key=value`},
		{[]string{"encrypt", k.ID, "--context", "=v"}, `invalid --context "=v": want key=value`},
		{[]string{"encrypt", k.ID, "--context", "a=1", "--context", "a=2"}, `invalid --context: key "a" given twice`},
		{[]string{"decrypt", "--context", "x"}, `invalid --context "x": want key=value`},
		{[]string{"generate-data-key", k.ID, "--context", ""}, `invalid --context "": want key=value`},
		{[]string{"re-encrypt", "--destination-context", "y"}, `invalid --destination-context "y": want key=value`},
	}
	for _, tt := range tests {
		_, err := e.run(t, []byte("data"), tt.args...)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v: got %v, want %q", tt.args, err, tt.want)
		}
	}
	if after := len(e.keys.Calls()); after != before {
		t.Errorf("bad flags reached the server: %d calls", after-before)
	}
	// An empty value is fine.
	if _, err := e.run(t, []byte("data"), "encrypt", k.ID, "--context", "a="); err != nil {
		t.Errorf("--context a=: %v", err)
	}
}

func TestCLI_AddressAndToken(t *testing.T) {
	e := newCLITestEnv(t)
	url := e.env["KEYZONE_ADDR"]

	delete(e.env, "KEYZONE_ADDR")
	_, err := e.run(t, nil, "key", "list")
	if err == nil || !strings.Contains(err.Error(), "set KEYZONE_ADDR or pass --addr") {
		t.Errorf("no address: got %v", err)
	}
	if _, err := e.run(t, nil, "key", "list", "--addr", url); err != nil {
		t.Errorf("--addr: %v", err)
	}

	e.env["KEYZONE_ADDR"] = "http://127.0.0.1:1" // nothing listens: the flag must win
	if _, err := e.run(t, nil, "cluster", "status", "--addr", url); err != nil {
		t.Errorf("--addr over KEYZONE_ADDR: %v", err)
	}
	e.env["KEYZONE_ADDR"] = url

	delete(e.env, "KEYZONE_TOKEN")
	_, err = e.run(t, nil, "key", "list")
	if err == nil || !strings.Contains(err.Error(), "set KEYZONE_TOKEN or pass --token") {
		t.Errorf("no token: got %v", err)
	}
	if _, err := e.run(t, nil, "key", "list", "--token", cliTestToken); err != nil {
		t.Errorf("--token: %v", err)
	}
	e.env["KEYZONE_TOKEN"] = "wrong"
	_, err = e.run(t, nil, "key", "list")
	if err == nil || !strings.HasPrefix(err.Error(), "keyzone: 401 unauthorized") {
		t.Errorf("wrong token: got %v", err)
	}
}

func TestCLI_KeyCommands(t *testing.T) {
	e := newCLITestEnv(t)
	out := string(e.mustRun(t, nil, "key", "create", "--name", "orders", "--description", "d", "--tag", "a", "--tag", "b",
		"--protected", "--rotation-period", "720h", "--idempotency-key", "idem-1"))
	for _, want := range []string{"Name:", "orders", "Tags:", "a, b", "Protected:", "true", "Rotation period:", "720h0m0s", "Next rotation:"} {
		if !strings.Contains(out, want) {
			t.Errorf("create table: missing %q in\n%s", want, out)
		}
	}
	p := e.keys.LastCall().Params.(keys.CreateParams)
	if p.IdempotencyKey != "idem-1" || !p.Protected || p.RotationPeriod.String() != "720h0m0s" || len(p.Tags) != 2 {
		t.Errorf("create params: got %+v", p)
	}
	if _, err := e.run(t, nil, "key", "create"); err == nil || !strings.Contains(err.Error(), `"name" not set`) {
		t.Errorf("create without --name: got %v", err)
	}

	list := cliJSON[wire.ListKeysResponse](t, e.mustRun(t, nil, "key", "list", "-o", "json", "--name", "orders", "--tag", "a", "--state", "enabled", "--page-size", "5"))
	if len(list.Keys) != 1 {
		t.Fatalf("list: got %+v", list)
	}
	if lp := e.keys.LastCall().Params.(keys.ListParams); lp.Name != "orders" || lp.Tag != "a" || lp.State != "enabled" || lp.PageSize != 5 {
		t.Errorf("list params: got %+v", lp)
	}
	k := list.Keys[0]
	table := string(e.mustRun(t, nil, "key", "list"))
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME STATE VERSION PROTECTED" ||
		strings.Join(strings.Fields(lines[1]), " ") != k.ID+" orders enabled 1 true" {
		t.Errorf("list table:\n%s", table)
	}

	// Lifecycle, with and without If-Match.
	if _, err := e.run(t, nil, "key", "disable", k.ID, "--if-match", "999"); err == nil || !strings.Contains(err.Error(), "412 revision_mismatch") {
		t.Errorf("stale --if-match: got %v", err)
	}
	got := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "disable", k.ID, "--if-match", strconv.FormatUint(k.Revision, 10), "-o", "json"))
	if got.State != "disabled" {
		t.Errorf("disable: got %s", got.State)
	}
	for _, step := range [][]string{{"enable"}, {"unprotect"}, {"protect"}, {"unprotect"}, {"rotate", "--idempotency-key", "r-1"}} {
		args := append([]string{"key", step[0], k.ID}, step[1:]...)
		if out := string(e.mustRun(t, nil, args...)); !strings.Contains(out, "State:") {
			t.Errorf("%v: got %q", args, out)
		}
	}
	if rp := e.keys.LastCall().Params.(keys.RotateParams); rp.IdempotencyKey != "r-1" {
		t.Errorf("rotate params: got %+v", rp)
	}
	versions := string(e.mustRun(t, nil, "key", "versions", k.ID))
	if !strings.Contains(versions, "VERSION") || !strings.Contains(versions, "*") || strings.Count(versions, "\n") != 3 {
		t.Errorf("versions table:\n%s", versions)
	}

	out = string(e.mustRun(t, nil, "key", "schedule-deletion", k.ID, "--pending-window", "48h"))
	if !strings.Contains(out, "pending_deletion") || !strings.Contains(out, "Deletion at:") {
		t.Errorf("schedule-deletion:\n%s", out)
	}
	if sp := e.keys.LastCall().Params.(keys.ScheduleDeletionParams); sp.PendingWindow.String() != "48h0m0s" {
		t.Errorf("schedule params: got %+v", sp)
	}
	if out := string(e.mustRun(t, nil, "key", "cancel-deletion", k.ID)); !strings.Contains(out, "disabled") {
		t.Errorf("cancel-deletion:\n%s", out)
	}

	// Update sends only the flags given.
	if _, err := e.run(t, nil, "key", "update", k.ID); err == nil || !strings.Contains(err.Error(), "nothing to update") {
		t.Errorf("empty update: got %v", err)
	}
	got = cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "update", k.ID, "--tag", "z", "--rotation-period", "0", "-o", "json"))
	if len(got.Tags) != 1 || got.Tags[0] != "z" || got.RotationPolicy.RotationPeriod != "" || got.Description != "d" {
		t.Errorf("update: got %+v", got)
	}
	up := e.keys.LastCall().Params.(keys.UpdateParams)
	if up.Name != nil || up.Description != nil || up.RotationPeriod == nil || *up.RotationPeriod != 0 {
		t.Errorf("update params: got %+v", up)
	}
	got = cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "update", k.ID, "--clear-tags", "--name", "renamed", "-o", "json"))
	if len(got.Tags) != 0 || got.Name != "renamed" {
		t.Errorf("update --clear-tags: got %+v", got)
	}

	_, err := e.run(t, nil, "key", "get", "missing")
	if err == nil || !strings.HasPrefix(err.Error(), "keyzone: 404 key_not_found") {
		t.Errorf("get missing: got %v", err)
	}
	if _, err := e.run(t, nil, "key", "get"); err == nil {
		t.Error("get without an id: got nil error")
	}
}

func TestCLI_DataKeysAndReEncrypt(t *testing.T) {
	e := newCLITestEnv(t)
	src := e.createKey(t, "src")
	dst := e.createKey(t, "dst")

	out := string(e.mustRun(t, nil, "generate-data-key", src.ID, "--without-plaintext", "--context", "a=b"))
	if strings.Contains(out, "Plaintext:") || !strings.Contains(out, "Ciphertext:") {
		t.Errorf("without plaintext:\n%s", out)
	}
	out = string(e.mustRun(t, nil, "generate-data-key", src.ID))
	if !strings.Contains(out, "Plaintext:") {
		t.Errorf("with plaintext:\n%s", out)
	}
	if dp := e.keys.LastCall().Params.(keys.DataKeyParams); dp.KeySizeBits != 256 {
		t.Errorf("default key size: got %d", dp.KeySizeBits)
	}
	if _, err := e.run(t, nil, "generate-data-key", src.ID, "--key-size", "100"); err == nil || !strings.Contains(err.Error(), "want 128 or 256") {
		t.Errorf("--key-size 100: got %v", err)
	}

	ct := e.mustRun(t, []byte("move me"), "encrypt", src.ID, "--context", "c=1")
	re := e.mustRun(t, ct, "re-encrypt", "--context", "c=1", "--destination-key-id", dst.ID, "--destination-context", "d=2")
	if bytes.Count(re, []byte("\n")) != 1 {
		t.Fatalf("re-encrypt output: %q", re)
	}
	if p := e.keys.LastCall().Params.(keys.ReEncryptParams); p.DestinationKeyID != dst.ID || p.DestinationContext.Map["d"] != "2" {
		t.Errorf("re-encrypt params: got %+v", p)
	}
	dec := cliJSON[wire.DecryptResponse](t, e.mustRun(t, re, "decrypt", "--context", "d=2", "-o", "json"))
	if dec.KeyID != dst.ID || string(dec.Plaintext) != "move me" {
		t.Errorf("decrypt after re-encrypt: got %+v", dec)
	}
	if _, err := e.run(t, re, "re-encrypt", "--key-id", src.ID, "--context", "d=2"); err == nil || !strings.Contains(err.Error(), "422") {
		t.Errorf("re-encrypt --key-id of another key: got %v", err)
	}

	for _, in := range []string{"", "  \n", "not*base64"} {
		_, err := e.run(t, []byte(in), "decrypt")
		if err == nil || !(strings.Contains(err.Error(), "no ciphertext") || strings.Contains(err.Error(), "not standard base64")) {
			t.Errorf("decrypt of %q: got %v", in, err)
		}
	}
}

func TestCLI_ClusterStatus(t *testing.T) {
	e := newCLITestEnv(t)
	out := string(e.mustRun(t, nil, "cluster", "status"))
	for _, want := range []string{"Zone:", "zone-a", "Applied index:", "42", "ID", "API", "RAFT", "STATE", "LEADER"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	var leaderLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "node-1 ") {
			leaderLine = l
		}
		if strings.HasPrefix(l, "node-2 ") && strings.HasSuffix(strings.TrimSpace(l), "*") {
			t.Errorf("follower marked leader: %q", l)
		}
	}
	if f := strings.Fields(leaderLine); len(f) != 5 || f[3] != "leader" || f[4] != "*" {
		t.Errorf("leader row: got %q", leaderLine)
	}
}

func TestCLI_RootWiresClientCommands(t *testing.T) {
	root := newRootCommand()
	for _, path := range [][]string{{"key", "create"}, {"key", "schedule-deletion"}, {"encrypt"}, {"decrypt"}, {"generate-data-key"}, {"re-encrypt"}, {"cluster", "status"}, {"cluster", "peers"}, {"cluster", "remove-peer"}, {"cluster", "transfer-leadership"},
		{"key", "add-replica"}, {"key", "remove-replica"}, {"zone", "status"}, {"org", "create"}, {"org", "list"}, {"org", "get"}, {"org", "update"},
		{"token", "create"}, {"token", "list"}, {"token", "revoke"}, {"whoami"}, {"audit"}} {
		c, _, err := root.Find(path)
		if err != nil || c.Name() != path[len(path)-1] {
			t.Errorf("keyzone %v: got %v, %v", path, c, err)
		}
	}
}

func TestCLI_ClusterPeers(t *testing.T) {
	e := newCLITestEnv(t)
	out := string(e.mustRun(t, nil, "cluster", "peers"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "LAST CONTACT") {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[2]); len(f) != 6 || f[0] != "node-2" || f[3] != "follower" || f[4] != "12ms" || f[5] != "42" {
		t.Errorf("node-2 row: got %q", lines[2])
	}
	if f := strings.Fields(lines[3]); len(f) != 6 || f[3] != "unreachable" || f[4] != "-" || f[5] != "-" {
		t.Errorf("node-3 row: got %q", lines[3])
	}
	ps := cliJSON[wire.PeersResponse](t, e.mustRun(t, nil, "cluster", "peers", "-o", "json"))
	if len(ps.Peers) != 3 || ps.Peers[0].ID != "node-1" {
		t.Errorf("json: got %+v", ps)
	}
}

func TestCLI_RemovePeerAndTransfer(t *testing.T) {
	e := newCLITestEnv(t)
	if _, err := e.run(t, nil, "cluster", "remove-peer", "nope"); err == nil || !strings.Contains(err.Error(), "peer_not_found") {
		t.Errorf("remove unknown: got %v", err)
	}
	if _, err := e.run(t, nil, "cluster", "remove-peer"); err == nil {
		t.Error("remove-peer without id: got nil error")
	}
	if out := string(e.mustRun(t, nil, "cluster", "remove-peer", "node-3")); !strings.Contains(out, "Removed node-3") {
		t.Errorf("remove: got %q", out)
	}
	if got := len(e.cluster.PeersSnapshot()); got != 2 {
		t.Errorf("peers after removal: got %d, want 2", got)
	}
	if out := string(e.mustRun(t, nil, "cluster", "transfer-leadership", "node-2")); !strings.Contains(out, "transferred to node-2") {
		t.Errorf("transfer: got %q", out)
	}
	res := cliJSON[map[string]any](t, e.mustRun(t, nil, "cluster", "transfer-leadership", "-o", "json"))
	if res["transferred"] != true {
		t.Errorf("transfer json: got %v", res)
	}
	if got := e.cluster.Transfers(); len(got) != 2 || got[0] != "node-2" || got[1] != "" {
		t.Errorf("transfers: got %q", got)
	}
}
