package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/client"
)

// Environment variable of the CLI's --ca-file (the variable of
// `keyzone server`'s --tls-ca-file is KEYZONE_TLS_CA_FILE, like every
// server flag's).
const envCAFile = "KEYZONE_CA_FILE"

// serverTLS is what `keyzone server`'s TLS flags load: the API's config
// (nil without --tls-cert-file), the config of the node's calls to other
// nodes (nil: the system pool), and the certificate to reload on SIGHUP.
type serverTLS struct {
	api, peer *tls.Config
	cert      *certReloader
}

// loadServerTLS loads the node's certificate and key (both or neither)
// and the CA bundle it trusts for other nodes' certificates.
func loadServerTLS(certFile, keyFile, caFile string) (serverTLS, error) {
	var out serverTLS
	if (certFile == "") != (keyFile == "") {
		return out, errors.New("--tls-cert-file and --tls-key-file go together: give both (the API then serves https only) or neither")
	}
	if caFile != "" {
		pool, err := client.LoadCAFile(caFile)
		if err != nil {
			return out, fmt.Errorf("--tls-ca-file: %w", err)
		}
		out.peer = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if certFile == "" {
		return out, nil
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(); err != nil {
		return out, err
	}
	out.cert = r
	out.api = &tls.Config{GetCertificate: r.getCertificate, MinVersion: tls.VersionTLS12}
	return out, nil
}

// certReloader serves the API's certificate, and replaces it when asked
// (SIGHUP) with the files' current content.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// reload reads the pair again; on error the previous certificate stays.
func (r *certReloader) reload() error {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("--tls-cert-file: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-key-file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		return fmt.Errorf("--tls-cert-file %s and --tls-key-file %s: %w (want a PEM certificate, its chain, and the PEM private key of that certificate)", r.certFile, r.keyFile, err)
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return fmt.Errorf("--tls-cert-file %s: the certificate expired at %s", r.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	r.cert.Store(&cert)
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// expiry is when the served certificate expires.
func (r *certReloader) expiry() time.Time { return r.cert.Load().Leaf.NotAfter }

// reloadOnHUP reloads the certificate on each SIGHUP until ctx ends. A
// failed reload is logged and keeps the certificate being served.
func reloadOnHUP(ctx context.Context, r *certReloader, logger hclog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := r.reload(); err != nil {
				logger.Error("tls certificate not reloaded, the previous one is still served", "error", err)
				continue
			}
			logger.Info("tls certificate reloaded", "not_after", r.expiry().UTC())
		}
	}
}

// clientTLSHint adds what to do to the TLS errors a client command can
// meet: a certificate signed by a CA it does not trust, or an https
// address of a node that serves plain http.
func clientTLSHint(err error) error {
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("%w\n(the node's certificate is signed by a CA this command does not trust: pass --ca-file or set %s to its PEM file, e.g. the CA file `keyzone dev --tls` names in its env file)", err, envCAFile)
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return fmt.Errorf("%w\n(the node does not answer TLS: does it serve plain http? then use an http:// address)", err)
	}
	if ce, ok := errors.AsType[*client.Error](err); ok && ce.Code == "" && strings.Contains(ce.Message, "HTTP request to an HTTPS server") {
		return fmt.Errorf("%w\n(the node serves https only: use an https:// address)", err)
	}
	return err
}

// addTLSHints makes every command of the tree under cmd explain its TLS
// errors (clientTLSHint).
func addTLSHints(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return clientTLSHint(run(c, args)) }
	}
	for _, sub := range cmd.Commands() {
		addTLSHints(sub)
	}
}

// devCertValidity is how long the certificates of `keyzone dev --tls`
// are valid: a dev deployment is throwaway.
const devCertValidity = 3 * 24 * time.Hour

// devPKI is the throwaway CA of `keyzone dev --tls` and the trust it
// gives: nodes verify each other, and the CLI verifies nodes, with pool.
type devPKI struct {
	caFile string // PEM of the CA certificate
	pool   *x509.CertPool
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

// newDevPKI makes a new CA (ECDSA P-256) and writes its certificate, not
// its key, to dir/ca.pem. The key stays in memory, to sign the nodes'
// certificates of this run.
func newDevPKI(dir string) (*devPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev tls: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dev tls: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "keyzone dev CA " + now.UTC().Format(time.RFC3339)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(devCertValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("dev tls: create the CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("dev tls: %w", err)
	}
	p := &devPKI{caFile: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool(), ca: ca, caKey: key}
	p.pool.AddCert(ca)
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("dev tls: %w", err)
	}
	return p, nil
}

// nodeCert issues the certificate of node id (ECDSA P-256, for
// 127.0.0.1, ::1 and localhost) and writes it and its key to
// dir/<id>.pem and dir/<id>-key.pem (mode 0600).
func (p *devPKI) nodeCert(dir, id string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "keyzone dev node " + id},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     p.ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Client auth too, for when nodes authenticate to each other with
		// their certificates (mutual TLS).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("dev tls: certificate of %s: %w", id, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, id+".pem"), certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("dev tls: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+"-key.pem"), keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("dev tls: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// randomSerial is a 128-bit random certificate serial number.
func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	return new(big.Int).SetBytes(b)
}
