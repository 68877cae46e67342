// Package tinkkms makes Keyzone a KMS of Tink (github.com/tink-crypto/tink-go):
// Client implements registry.KMSClient for key URIs keyzone://<key-id>, and
// the tink.AEAD it returns encrypts and decrypts through a Keyzone key, so
// that Tink's KMS envelope AEAD wraps its local data keys (DEKs) with it.
//
//	kms, err := tinkkms.NewClient("keyzone://")          // KEYZONE_ADDR, KEYZONE_TOKEN
//	kek, err := kms.GetAEAD("keyzone://" + keyID)
//	env := aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kek)
//	ct, err := env.Encrypt(plaintext, associatedData)
//
// The associated data given to the AEAD becomes the associated_data of
// Keyzone's encrypt and decrypt: a ciphertext opens only with the same
// bytes. Decryption goes to the key named by the URI, so a ciphertext of
// another key is refused even when the caller may use that key. Any zone
// holding the key (primary or replica) serves both.
package tinkkms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// Prefix starts every Keyzone key URI.
const Prefix = "keyzone://"

// DefaultTimeout bounds each call to Keyzone (tink.AEAD takes no context).
const DefaultTimeout = 30 * time.Second

// Client is a Tink KMS client for one Keyzone endpoint. It is safe for
// concurrent use.
type Client struct {
	prefix string
	kz     *client.Client
}

var _ registry.KMSClient = (*Client)(nil)

type options struct {
	addr, token string
	caFile      string
	hc          *http.Client
	session     *client.Session
	timeout     time.Duration
}

// Option configures NewClient.
type Option func(*options)

// WithAddress sets the base URL of a Keyzone node (default: $KEYZONE_ADDR).
func WithAddress(addr string) Option { return func(o *options) { o.addr = addr } }

// WithToken sets the bearer token (default: $KEYZONE_TOKEN).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithCAFile trusts the certificate authorities of a PEM file for an
// https address (default: $KEYZONE_CA_FILE; when empty, the system's).
// It is ignored with WithHTTPClient, whose transport has its own TLS
// settings.
func WithCAFile(path string) Option { return func(o *options) { o.caFile = path } }

// WithHTTPClient sets the HTTP client (TLS settings, proxies).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithSession shares a read-your-writes session with other Keyzone
// clients (see client.Session).
func WithSession(s *client.Session) Option { return func(o *options) { o.session = s } }

// WithTimeout bounds each call (DefaultTimeout when not set).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// NewClient returns a client for the key URIs that start with uriPrefix,
// which must start with "keyzone://": "keyzone://" serves every key,
// "keyzone://<key-id>" only that one (Tink's convention for binding a
// client to one key).
func NewClient(uriPrefix string, opts ...Option) (*Client, error) {
	if !strings.HasPrefix(strings.ToLower(uriPrefix), Prefix) {
		return nil, fmt.Errorf("tinkkms: uri prefix %q does not start with %s", uriPrefix, Prefix)
	}
	o := options{addr: os.Getenv("KEYZONE_ADDR"), token: os.Getenv("KEYZONE_TOKEN"), caFile: os.Getenv("KEYZONE_CA_FILE"), timeout: DefaultTimeout}
	for _, f := range opts {
		f(&o)
	}
	if o.addr == "" {
		return nil, errors.New("tinkkms: no Keyzone address: use WithAddress or set KEYZONE_ADDR")
	}
	if o.token == "" {
		return nil, errors.New("tinkkms: no Keyzone token: use WithToken or set KEYZONE_TOKEN")
	}
	copts := []client.Option{client.WithTimeout(o.timeout)}
	if o.hc != nil {
		copts = append(copts, client.WithHTTPClient(o.hc))
	} else {
		copts = append(copts, client.WithCAFile(o.caFile))
	}
	if o.session != nil {
		copts = append(copts, client.WithSession(o.session))
	}
	kz, err := client.New(o.addr, o.token, copts...)
	if err != nil {
		return nil, fmt.Errorf("tinkkms: %w", err)
	}
	return &Client{prefix: Prefix + uriPrefix[len(Prefix):], kz: kz}, nil
}

// Supported reports whether keyURI is a Keyzone key URI under the
// client's prefix.
func (c *Client) Supported(keyURI string) bool {
	_, err := c.keyID(keyURI)
	return err == nil
}

// GetAEAD returns the AEAD of the key keyURI names. It does not call
// Keyzone: a missing key or a refused token shows at the first use.
func (c *Client) GetAEAD(keyURI string) (tink.AEAD, error) {
	id, err := c.keyID(keyURI)
	if err != nil {
		return nil, err
	}
	return &AEAD{kz: c.kz, keyID: id}, nil
}

// keyID returns the key id of a supported URI. The scheme is matched
// case-insensitively, as URI schemes are.
func (c *Client) keyID(keyURI string) (string, error) {
	if len(keyURI) < len(Prefix) || !strings.EqualFold(keyURI[:len(Prefix)], Prefix) {
		return "", fmt.Errorf("tinkkms: %q is not a keyzone:// key URI", keyURI)
	}
	uri := Prefix + keyURI[len(Prefix):]
	if !strings.HasPrefix(uri, c.prefix) {
		return "", fmt.Errorf("tinkkms: key URI %q is outside this client's prefix %q", keyURI, c.prefix)
	}
	id := uri[len(Prefix):]
	if id == "" || strings.ContainsAny(id, "/?#") {
		return "", fmt.Errorf("tinkkms: key URI %q does not name one key (keyzone://<key-id>)", keyURI)
	}
	return id, nil
}

// AEAD encrypts and decrypts through one Keyzone key. Its associated data
// is Keyzone's associated_data.
type AEAD struct {
	kz    *client.Client
	keyID string
}

var _ tink.AEAD = (*AEAD)(nil)

// Encrypt encrypts plaintext under the key's current version, bound to
// associatedData.
func (a *AEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return a.EncryptWithContext(context.Background(), plaintext, associatedData)
}

// Decrypt decrypts a ciphertext made by Encrypt with the same key and
// associated data; anything else fails.
func (a *AEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return a.DecryptWithContext(context.Background(), ciphertext, associatedData)
}

// EncryptWithContext is Encrypt bounded by ctx.
func (a *AEAD) EncryptWithContext(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	res, err := a.kz.Encrypt(ctx, a.keyID, wire.EncryptRequest{Plaintext: plaintext, AssociatedData: associatedData})
	if err != nil {
		return nil, fmt.Errorf("tinkkms: encrypt with key %s: %w", a.keyID, err)
	}
	return res.Ciphertext, nil
}

// DecryptWithContext is Decrypt bounded by ctx.
func (a *AEAD) DecryptWithContext(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	res, err := a.kz.DecryptWithKey(ctx, a.keyID, wire.DecryptRequest{Ciphertext: ciphertext, AssociatedData: associatedData})
	if err != nil {
		return nil, fmt.Errorf("tinkkms: decrypt with key %s: %w", a.keyID, err)
	}
	return res.Plaintext, nil
}
