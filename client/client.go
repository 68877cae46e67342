// Package client is the Go SDK of Keyzone's HTTP API. Each method mirrors
// one route and speaks the DTOs of package wire; API errors come back as
// *Error with the HTTP status and the server's stable code.
//
//	c, err := client.New("http://127.0.0.1:8200", token)
//	k, err := c.CreateKey(ctx, wire.CreateKeyRequest{Name: "orders"})
//	enc, err := c.Encrypt(ctx, k.ID, wire.EncryptRequest{Plaintext: data})
//	dec, err := c.Decrypt(ctx, wire.DecryptRequest{Ciphertext: enc.Ciphertext})
//
// A Client is safe for concurrent use and keeps connections alive.
package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyzone/keyzone/api/wire"
)

// DefaultTimeout bounds each call unless WithTimeout says otherwise.
const DefaultTimeout = 30 * time.Second

// maxErrorBody caps how much of an error answer is read.
const maxErrorBody = 64 << 10

// Client calls one Keyzone node.
type Client struct {
	base    *url.URL
	token   string
	hc      *http.Client
	timeout time.Duration
	session *Session
	// tls and ca configure the Client's own transport (WithTLSConfig,
	// WithCAFile); optErr is the first error of an option, which New
	// returns.
	tls    *tls.Config
	ca     *x509.CertPool
	optErr error
}

// Session carries read-your-writes consistency across requests: it holds
// the highest Raft index of a change seen through it. Sent back on every
// request, that index makes whichever node answers wait until it has
// applied the change, so a rotation followed by an encryption on another
// node uses the new version, while crypto stays served locally. Every
// Client has its own Session; clients of several nodes share one with
// WithSession. A Session is safe for concurrent use.
type Session struct {
	mu sync.Mutex
	// index holds the highest index seen per zone ("" for an API
	// without zones).
	index map[string]uint64
}

// NewSession returns an empty session.
func NewSession() *Session { return &Session{index: map[string]uint64{}} }

// Index returns the highest change index seen in the session from zone
// ("" for an API without zones).
func (s *Session) Index(zone string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index[zone]
}

// observe records a response's "zone:index" (or bare index) header.
func (s *Session) observe(v string) {
	zone, num, ok := strings.Cut(v, ":")
	if !ok {
		zone, num = "", v
	}
	idx, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx > s.index[zone] {
		s.index[zone] = idx
	}
}

// header renders the indexes seen, or "" when none.
func (s *Session) header() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := make([]string, 0, len(s.index))
	for zone, idx := range s.index {
		if zone == "" {
			parts = append(parts, strconv.FormatUint(idx, 10))
		} else {
			parts = append(parts, zone+":"+strconv.FormatUint(idx, 10))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// WithSession makes the client share a session with other clients.
func WithSession(s *Session) Option {
	return func(c *Client) { c.session = s }
}

// Session consistency headers (see Client.sessionIndex).
const (
	headerIndex    = "X-Keyzone-Index"
	headerMinIndex = "X-Keyzone-Min-Index"
)

func (c *Client) observeIndex(resp *http.Response) {
	if v := resp.Header.Get(headerIndex); v != "" {
		c.session.observe(v)
	}
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests through hc (for TLS settings, proxies or
// tests) instead of the Client's own keep-alive client.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithTLSConfig makes the Client's own transport use cfg (cloned) for an
// https address, e.g. with RootCAs naming a private CA or a client
// certificate. It can't be combined with WithHTTPClient, whose transport
// has its own TLS settings.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) { c.tls = cfg.Clone() }
}

// WithCAFile makes the Client trust the certificate authorities in the
// PEM file at path, and only them, for an https address (as curl's
// --cacert does): the way to reach nodes whose certificates a private CA,
// such as the one of `keyzone dev --tls`, signed. An empty path changes
// nothing. With WithTLSConfig too, it sets that config's RootCAs. It
// can't be combined with WithHTTPClient.
func WithCAFile(path string) Option {
	return func(c *Client) {
		if path == "" {
			return
		}
		pool, err := LoadCAFile(path)
		if err != nil {
			c.optErr = cmp.Or(c.optErr, err)
			return
		}
		c.ca = pool
	}
}

// LoadCAFile reads a PEM bundle of CA certificates into a pool, refusing
// a file that holds none.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyzone: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("keyzone: CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// WithTimeout bounds each call, on top of its context's deadline; 0 means
// no bound but the context's.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// New returns a client of the node at addr ("http://host:port" or
// "https://host:port"; a bare "host:port" means http) that authenticates
// with token. An https address is verified against the system's CAs
// unless WithCAFile or WithTLSConfig says otherwise. An empty token sends no Authorization header (enough for
// Health only).
func New(addr, token string, opts ...Option) (*Client, error) {
	if addr == "" {
		return nil, errors.New("keyzone: empty address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("keyzone: address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("keyzone: address %q: scheme must be http or https", addr)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("keyzone: address %q: no host", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, token: token, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.optErr != nil {
		return nil, c.optErr
	}
	if c.ca != nil {
		if c.tls == nil {
			c.tls = &tls.Config{}
		}
		c.tls.RootCAs = c.ca
	}
	switch {
	case c.hc != nil && c.tls != nil:
		return nil, errors.New("keyzone: WithHTTPClient can't be combined with WithTLSConfig or WithCAFile: set the TLS config in the HTTP client's transport")
	case c.hc == nil:
		tr := newTransport()
		tr.TLSClientConfig = c.tls
		c.hc = &http.Client{Transport: tr}
	}
	if c.session == nil {
		c.session = NewSession()
	}
	return c, nil
}

// newTransport is http.DefaultTransport's settings with more idle
// connections per host, since a client talks to one node.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// Error is an error answer of the API.
type Error struct {
	StatusCode int    // HTTP status
	Code       string // stable code such as "key_not_found"; "" if the answer was not Keyzone's
	Message    string
	// RetryAfter is the server's Retry-After hint (on 503), or 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("keyzone: %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("keyzone: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	ifMatch        uint64
	idempotencyKey string
	stale          bool
}

// IfMatch makes a lifecycle call or update conditional on the key's
// revision: the server answers 412 revision_mismatch if it changed.
func IfMatch(revision uint64) CallOption {
	return func(o *callOptions) { o.ifMatch = revision }
}

// IdempotencyKey makes CreateKey or RotateKey safe to retry: a repeat
// with the same key within 24 hours returns the first result.
func IdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idempotencyKey = key }
}

// Stale lets GetKey and KeyVersions read the answering node's local state
// instead of the leader's.
func Stale() CallOption {
	return func(o *callOptions) { o.stale = true }
}

// do sends one request. in, when not nil, is sent as JSON; out, when not
// nil, receives the JSON answer of a 2xx. okStatus lists extra non-2xx
// statuses whose body is decoded into out rather than returned as *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, opts []CallOption, okStatus ...int) error {
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	if o.stale {
		if query == nil {
			query = url.Values{}
		}
		query.Set("stale", "true")
	}
	// path is already escaped (see keyPath); base has no query.
	target := c.base.String() + path
	if q := query.Encode(); q != "" {
		target += "?" + q
	}

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("keyzone: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("keyzone: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keyzone-go-client")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if o.ifMatch != 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatUint(o.ifMatch, 10)))
	}
	if o.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", o.idempotencyKey)
	}
	if v := c.session.header(); v != "" {
		req.Header.Set(headerMinIndex, v)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("keyzone: %s %s: %w", method, path, err)
	}
	c.observeIndex(resp)
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if out != nil && slices.Contains(okStatus, resp.StatusCode) {
			// The answer is out's type only if it decodes strictly; a
			// proxy's or an error body is reported as an *Error.
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if dec.Decode(out) == nil {
				return nil
			}
		}
		return apiError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("keyzone: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// apiError builds the *Error of a non-2xx answer with body b, whether or
// not b is Keyzone's JSON error.
func apiError(resp *http.Response, b []byte) error {
	e := &Error{StatusCode: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var er wire.ErrorResponse
	if json.Unmarshal(b, &er) == nil && er.Error.Code != "" {
		e.Code, e.Message = er.Error.Code, er.Error.Message
		return e
	}
	e.Message = strings.TrimSpace(string(b))
	if e.Message == "" || len(e.Message) > 200 {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// keyPath is /v1/keys/{id}[/suffix] with id escaped.
func keyPath(id, suffix string) (string, error) {
	if id == "" {
		return "", errors.New("keyzone: empty key id")
	}
	p := "/v1/keys/" + url.PathEscape(id)
	if suffix != "" {
		p += "/" + suffix
	}
	return p, nil
}
