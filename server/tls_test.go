package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/server"
)

// testPKI is a CA made for one test and a certificate it signed for
// 127.0.0.1 and localhost.
type testPKI struct {
	pool *x509.CertPool
	cert tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyzone test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "keyzone test node"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{pool: x509.NewCertPool(), cert: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}}
	p.pool.AddCert(ca)
	return p
}

// testDeployment is what the nodes of one test deployment share.
type testDeployment struct {
	t        *testing.T
	rek      *kzcrypto.REK
	operator string
	home     string
	pki      *testPKI // nil: plain http
}

func newTestDeployment(t *testing.T, home string, pki *testPKI) *testDeployment {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	rek, err := kzcrypto.NewREK(raw)
	if err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	return &testDeployment{t: t, rek: rek, operator: "kz_test_" + hex.EncodeToString(tok), home: home, pki: pki}
}

// start starts node id of zone with bootstrap-expect expect, joining
// join, with test timings and raw imports accepted, as
// test/clustertest does; it is shut down when the test ends.
func (d *testDeployment) start(id, zone string, expect int, join []string) *server.Server {
	d.t.Helper()
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Zone, cc.DataDir = id, zone, filepath.Join(d.t.TempDir(), id)
	cc.RaftBind, cc.GossipBind = "127.0.0.1:0", "127.0.0.1:0"
	cc.GossipProfile = "local"
	cc.Join = join
	cc.BootstrapExpect = expect
	cc.HeartbeatTimeout, cc.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	cc.LeaderLeaseTimeout = 150 * time.Millisecond
	cc.LeaderWait = 10 * time.Second
	cfg := server.Config{
		Cluster:             cc,
		Keys:                keys.Config{REK: d.rek, AllowRawImport: true},
		APIBind:             "127.0.0.1:0",
		OperatorToken:       d.operator,
		HomeZone:            d.home,
		ReplicationPollWait: 2 * time.Second,
		Logger:              hclog.NewNullLogger(),
	}
	if d.pki != nil {
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{d.pki.cert}}
		cfg.PeerTLS = &tls.Config{RootCAs: d.pki.pool}
	}
	s, err := server.Start(cfg)
	if err != nil {
		d.t.Fatalf("start %s: %v", id, err)
	}
	d.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			d.t.Logf("shutdown %s: %v", id, err)
		}
	})
	return s
}

// client returns a client of s with token, trusting the test CA.
func (d *testDeployment) client(s *server.Server, token string) *client.Client {
	d.t.Helper()
	var opts []client.Option
	if d.pki != nil {
		opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: d.pki.pool}))
	}
	c, err := client.New(s.APIAddress(), token, append(opts, client.WithTimeout(5*time.Second))...)
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// organization creates an organization through s (a node of the home
// zone) and returns an org-admin token of it once every node in nodes
// accepts it.
func (d *testDeployment) organization(s *server.Server, nodes ...*server.Server) string {
	d.t.Helper()
	ctx := context.Background()
	op := d.client(s, d.operator)
	var org wire.Organization
	waitFor(d.t, 30*time.Second, "an organization created", func() bool {
		var err error
		org, err = op.CreateOrganization(ctx, wire.CreateOrganizationRequest{Name: "tls"})
		return err == nil
	})
	tok, err := op.CreateToken(ctx, org.ID, wire.CreateTokenRequest{Role: "org-admin"})
	if err != nil {
		d.t.Fatalf("create token: %v", err)
	}
	for _, n := range nodes {
		c := d.client(n, tok.Secret)
		waitFor(d.t, 30*time.Second, "the token accepted by "+n.Node().ID(), func() bool {
			_, err := c.WhoAmI(ctx)
			return err == nil
		})
	}
	return tok.Secret
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits until every node knows its zone's leader and sees all
// of them in the pool.
func waitReady(t *testing.T, nodes ...*server.Server) {
	t.Helper()
	waitFor(t, 30*time.Second, "every node ready and in the pool", func() bool {
		for _, s := range nodes {
			if !s.Node().Health(context.Background()).Ready || len(s.Node().Members()) != len(nodes) {
				return false
			}
		}
		return true
	})
}

// TestServer_TLS runs two zones whose APIs serve https only (zone-a of two
// nodes, zone-b of one): every node-to-node call (forwarding to the zone's
// leader, change-log pulls, forwarding to the primary zone) goes over TLS,
// and a raw import over TLS is accepted.
func TestServer_TLS(t *testing.T) {
	pki := newTestPKI(t)
	d := newTestDeployment(t, "zone-a", &pki)
	a1 := d.start("a1", "zone-a", 2, nil)
	a2 := d.start("a2", "zone-a", 2, []string{a1.Node().GossipAddress()})
	b1 := d.start("b1", "zone-b", 1, []string{a1.Node().GossipAddress()})
	waitReady(t, a1, a2, b1)
	ctx := context.Background()

	for _, s := range []*server.Server{a1, a2, b1} {
		if !strings.HasPrefix(s.APIAddress(), "https://") {
			t.Fatalf("%s advertises %s, want an https address", s.Node().ID(), s.APIAddress())
		}
	}
	host := strings.TrimPrefix(a1.APIAddress(), "https://")

	t.Run("https only", func(t *testing.T) {
		if _, err := d.client(a1, "").Health(ctx); err != nil {
			t.Fatalf("health over https: %v", err)
		}
		resp, err := http.Get("http://" + host + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain http to the TLS listener: status %d, want 400", resp.StatusCode)
			}
		}
		conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: pki.pool})
		if err != nil {
			t.Fatal(err)
		}
		if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(v))
		}
		conn.Close()
		if conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: pki.pool, MaxVersion: tls.VersionTLS11}); err == nil {
			conn.Close()
			t.Error("a TLS 1.1 handshake succeeded, want TLS 1.2 at least")
		}
	})

	t.Run("client without the CA", func(t *testing.T) {
		c, err := client.New(a1.APIAddress(), "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Health(ctx)
		if _, ok := errors.AsType[x509.UnknownAuthorityError](err); !ok {
			t.Fatalf("health without the CA: %v, want a certificate signed by an unknown authority", err)
		}
	})

	// The token reaches zone-b through a change-log pull over https.
	token := d.organization(a1, a1, a2, b1)
	var follower *server.Server
	waitFor(t, 20*time.Second, "a leader in zone-a", func() bool {
		for _, s := range []*server.Server{a1, a2} {
			if s.Node().IsLeader() {
				follower = map[*server.Server]*server.Server{a1: a2, a2: a1}[s]
				return true
			}
		}
		return false
	})
	fa, zb := d.client(follower, token), d.client(b1, token)

	// Created through zone-a's follower: the proposal is forwarded to the
	// leader over https.
	k, err := fa.CreateKey(ctx, wire.CreateKeyRequest{Name: "raw", Origin: "external", ReplicaZones: []string{"zone-b"}})
	if err != nil {
		t.Fatalf("create key on a follower: %v", err)
	}
	material := []byte("0123456789abcdef0123456789abcdef")
	k, err = fa.ImportRawMaterial(ctx, k.ID, material)
	if err != nil {
		t.Fatalf("raw import over TLS: %v", err)
	}
	if k.State != "enabled" || k.CurrentVersion != 1 {
		t.Fatalf("after a raw import: state %s version %d, want enabled 1", k.State, k.CurrentVersion)
	}
	enc, err := fa.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: []byte("over tls")})
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	// Replication: the replica in zone-b decrypts.
	var dec wire.DecryptResponse
	waitFor(t, 30*time.Second, "zone-b to decrypt under the imported version", func() bool {
		dec, err = zb.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
		return err == nil
	})
	if string(dec.Plaintext) != "over tls" {
		t.Fatalf("zone-b decrypted %q", dec.Plaintext)
	}

	// A lifecycle change sent to the replica zone is forwarded to the
	// primary zone over https.
	got, err := zb.DisableKey(ctx, k.ID)
	if err != nil || got.State != "disabled" {
		t.Fatalf("disable through zone-b: %+v, %v; want disabled", got, err)
	}
	if got, err := fa.GetKey(ctx, k.ID); err != nil || got.State != "disabled" {
		t.Fatalf("the key in its primary zone after the forwarded disable: %+v, %v; want disabled", got, err)
	}
	if got, err := zb.EnableKey(ctx, k.ID); err != nil || got.State != "enabled" {
		t.Fatalf("enable through zone-b: %+v, %v; want enabled", got, err)
	}
}

// TestServer_RawImportNeedsTLS: a node that accepts raw imports but serves
// plain http refuses one (403 raw_import_refused), and the client refuses
// to send raw material to an http address at all.
func TestServer_RawImportNeedsTLS(t *testing.T) {
	d := newTestDeployment(t, "zone-a", nil)
	s := d.start("p1", "zone-a", 1, nil)
	waitReady(t, s)
	token := d.organization(s, s)
	c := d.client(s, token)
	ctx := context.Background()
	k, err := c.CreateKey(ctx, wire.CreateKeyRequest{Name: "raw", Origin: "external"})
	if err != nil {
		t.Fatal(err)
	}
	material := []byte("0123456789abcdef0123456789abcdef")
	_, err = c.ImportKeyMaterial(ctx, k.ID, wire.ImportKeyMaterialRequest{KeyMaterial: material})
	ce, ok := errors.AsType[*client.Error](err)
	if !ok || ce.StatusCode != http.StatusForbidden || ce.Code != wire.CodeRawImportRefused {
		t.Fatalf("raw import over plain http: %v, want 403 %s", err, wire.CodeRawImportRefused)
	}
	if _, err := c.ImportRawMaterial(ctx, k.ID, material); !errors.Is(err, client.ErrRawImportNeedsTLS) {
		t.Fatalf("ImportRawMaterial to an http address: %v, want ErrRawImportNeedsTLS", err)
	}
	// The sealed import works over http.
	if k, err = c.ImportMaterial(ctx, k.ID, material); err != nil || k.State != "enabled" {
		t.Fatalf("sealed import: %+v, %v", k, err)
	}
}

// TestServer_TLSConfigWithoutCertificate: a TLS config holding no
// certificate is refused at start, not at the first handshake.
func TestServer_TLSConfigWithoutCertificate(t *testing.T) {
	d := newTestDeployment(t, "zone-a", nil)
	_, err := server.Start(server.Config{
		Keys: keys.Config{REK: d.rek}, OperatorToken: d.operator, APIBind: "127.0.0.1:0",
		TLS: &tls.Config{},
	})
	if err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("start with an empty TLS config: %v, want it refused", err)
	}
}
