package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/test/clustertest"
)

// writeTestPKI makes a CA and two node certificates with the code of
// `keyzone dev --tls` in dir: ca.pem, n1.pem, n1-key.pem, n2.pem, n2-key.pem.
func writeTestPKI(t *testing.T, dir string) *devPKI {
	t.Helper()
	p, err := newDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2"} {
		if _, err := p.nodeCert(dir, id); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestServer_TLSFlags: the TLS flags of `keyzone server` refuse a half,
// missing or mismatched pair with a clear error; given a good pair the
// node serves https only, and the CLI reaches it with --ca-file and
// imports raw material with key import --raw.
func TestServer_TLSFlags(t *testing.T) {
	dir := t.TempDir()
	pki := writeTestPKI(t, filepath.Join(dir, "tls"))
	cert, key := filepath.Join(dir, "tls", "n1.pem"), filepath.Join(dir, "tls", "n1-key.pem")
	otherKey := filepath.Join(dir, "tls", "n2-key.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cert, key, ca string
		want          string
	}{
		{cert, "", "", "--tls-cert-file and --tls-key-file go together"},
		{"", key, "", "--tls-cert-file and --tls-key-file go together"},
		{filepath.Join(dir, "missing.pem"), key, "", "--tls-cert-file: open"},
		{cert, filepath.Join(dir, "missing.pem"), "", "--tls-key-file: open"},
		{cert, otherKey, "", "private key does not match public key"},
		{notPEM, key, "", "want a PEM certificate"},
		{cert, key, notPEM, "--tls-ca-file: keyzone: CA file " + notPEM + " holds no PEM certificate"},
		{"", "", filepath.Join(dir, "missing.pem"), "--tls-ca-file: keyzone: CA file: open"},
	} {
		_, err := loadServerTLS(tt.cert, tt.key, tt.ca)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("cert %q key %q ca %q: got %v, want %q", tt.cert, tt.key, tt.ca, err, tt.want)
		}
	}

	raw := make([]byte, 32)
	rand.Read(raw)
	rekFile := filepath.Join(dir, "rek.b64")
	if err := os.WriteFile(rekFile, []byte(base64.StdEncoding.EncodeToString(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	const operator = "tls-test-operator-token"
	api := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServerCommand(ctx, "--node-id", "n1", "--zone", "zone-a", "--data-dir", filepath.Join(dir, "n1"),
			"--root-key-file", rekFile, "--operator-token", operator, "--log-level", "error",
			"--bootstrap-expect", "1", "--gossip-profile", "local",
			"--api-addr", api, "--raft-addr", freeAddr(t), "--gossip-addr", freeAddr(t),
			"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-file", pki.caFile, "--allow-raw-import")
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	op, err := client.New("https://"+api, operator, client.WithCAFile(pki.caFile), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var org wire.Organization
	clustertest.WaitFor(t, 60*time.Second, "an organization created over https", func() bool {
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		org, err = op.CreateOrganization(context.Background(), wire.CreateOrganizationRequest{Name: "tls"})
		return err == nil
	})
	tok, err := op.CreateToken(context.Background(), org.ID, wire.CreateTokenRequest{Role: "org-admin"})
	if err != nil {
		t.Fatal(err)
	}

	e := &cliTestEnv{env: map[string]string{"KEYZONE_ADDR": "https://" + api, "KEYZONE_TOKEN": tok.Secret}}
	material := filepath.Join(dir, "material.bin")
	if err := os.WriteFile(material, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.run(t, nil, "key", "list"); err == nil || !strings.Contains(err.Error(), "pass --ca-file or set KEYZONE_CA_FILE") {
		t.Fatalf("without the CA: %v, want a certificate error naming --ca-file", err)
	}
	k := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "create", "--name", "raw", "--origin", "external", "--ca-file", pki.caFile, "-o", "json"))
	k = cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "import", k.ID, "--material-file", material, "--raw", "--ca-file", pki.caFile, "-o", "json"))
	if k.State != "enabled" || k.CurrentVersion != 1 {
		t.Fatalf("after key import --raw: state %s version %d, want enabled 1", k.State, k.CurrentVersion)
	}
	// KEYZONE_CA_FILE does what --ca-file does.
	e.env[envCAFile] = pki.caFile
	ct := e.mustRun(t, []byte("raw secret"), "encrypt", k.ID)
	if pt := e.mustRun(t, ct, "decrypt"); string(pt) != "raw secret" {
		t.Fatalf("decrypt: %q", pt)
	}
	if out := e.mustRun(t, nil, "health"); !strings.HasPrefix(string(out), "ready") {
		t.Errorf("health over https: %q", out)
	}

	// Raw material is never sent to an http address; the node, https only,
	// tells a plain http client to use https.
	e.env["KEYZONE_ADDR"] = "http://" + api
	if _, err := e.run(t, nil, "key", "import", k.ID, "--material-file", material, "--raw"); err == nil || !strings.Contains(err.Error(), "only to an https address") {
		t.Errorf("key import --raw to an http address: %v, want it refused before sending", err)
	}
	if _, err := e.run(t, nil, "key", "get", k.ID); err == nil || !strings.Contains(err.Error(), "use an https:// address") {
		t.Errorf("plain http to the https node: %v, want a hint to use https", err)
	}
}

// TestCertReloader: a reload serves the files' new pair; a failed one
// keeps the pair being served.
func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	writeTestPKI(t, dir)
	cert, key := filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem")
	tc, err := loadServerTLS(cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	if tc.api == nil || tc.peer != nil || tc.api.MinVersion != tls.VersionTLS12 {
		t.Fatalf("loaded %+v, want an API config of TLS 1.2 at least and no peer config", tc)
	}
	first, _ := tc.api.GetCertificate(nil)
	if first.Leaf.Subject.CommonName != "keyzone dev node n1" {
		t.Fatalf("serves %q", first.Leaf.Subject.CommonName)
	}
	for _, f := range []string{"n2.pem", "n2-key.pem"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.Replace(f, "n2", "n1", 1)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.cert.reload(); err != nil {
		t.Fatal(err)
	}
	if c, _ := tc.api.GetCertificate(nil); c.Leaf.Subject.CommonName != "keyzone dev node n2" {
		t.Fatalf("after a reload: serves %q, want n2's certificate", c.Leaf.Subject.CommonName)
	}
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tc.cert.reload(); err == nil {
		t.Fatal("reload of a broken key succeeded")
	}
	if c, _ := tc.api.GetCertificate(nil); c.Leaf.Subject.CommonName != "keyzone dev node n2" {
		t.Fatalf("after a failed reload: serves %q, want n2's certificate still", c.Leaf.Subject.CommonName)
	}
}

// TestDev_TLS runs `keyzone dev --tls` with two zones of one node: the env
// file names https addresses and the CA, and with it the CLI imports raw
// material in zone-a and decrypts in zone-b.
func TestDev_TLS(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	runDevInProcess(t, devFlags{zones: 2, nodes: 1, envFile: envFile, dataDir: filepath.Join(dir, "data"), logLevel: "error", tls: true})
	env, _ := readEnvFile(t, envFile)
	for _, name := range []string{"KEYZONE_ADDR", "KEYZONE_ADDR_ZONE_A", "KEYZONE_ADDR_ZONE_B"} {
		if !strings.HasPrefix(env[name], "https://127.0.0.1:") {
			t.Errorf("%s=%s, want an https address", name, env[name])
		}
	}
	if want := filepath.Join(dir, "data", "tls", "ca.pem"); env[envCAFile] != want {
		t.Fatalf("%s=%s, want %s", envCAFile, env[envCAFile], want)
	}
	for _, f := range []string{"a1.pem", "a1-key.pem", "b1.pem", "b1-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, "data", "tls", f)); err != nil {
			t.Errorf("node certificate: %v", err)
		}
	}

	e := &cliTestEnv{env: env}
	material := filepath.Join(dir, "material.bin")
	if err := os.WriteFile(material, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "create", "--name", "raw", "--origin", "external", "--replica-zone", "zone-b", "-o", "json"))
	k = cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "import", k.ID, "--material-file", material, "--raw", "-o", "json"))
	if k.State != "enabled" || k.CurrentVersion != 1 {
		t.Fatalf("after key import --raw: state %s version %d, want enabled 1", k.State, k.CurrentVersion)
	}
	ct := e.mustRun(t, []byte("dev tls"), "encrypt", k.ID)
	var pt []byte
	clustertest.WaitFor(t, 30*time.Second, "zone-b to decrypt", func() bool {
		var err error
		pt, err = e.run(t, ct, "decrypt", "--addr", env["KEYZONE_ADDR_ZONE_B"])
		return err == nil
	})
	if string(pt) != "dev tls" {
		t.Fatalf("zone-b decrypted %q", pt)
	}
}
