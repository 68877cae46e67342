package zone

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ErrUnreachable is returned by Forward when no node of the zone answers.
var ErrUnreachable = errors.New("zone: no node of the zone answers")

// forwardedRequestHeaders are the request headers a forwarded call keeps:
// the caller's credentials and its conditions.
var forwardedRequestHeaders = []string{
	"Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Keyzone-Forwarded-From",
}

// forwardedResponseHeaders are the answer's headers relayed to the caller.
var forwardedResponseHeaders = []string{
	"Content-Type", "ETag", "Retry-After", "X-Keyzone-Index", "Location",
}

// Forwarder sends a request on to a node of another zone (a lifecycle
// change of a key whose primary is there) and relays the answer.
type Forwarder struct {
	directory Directory
	http      *http.Client
	timeout   time.Duration
}

// NewForwarder returns a Forwarder that finds zones' nodes in directory.
// tlsConfig (cloned) verifies the nodes whose API address is https: its
// RootCAs are the authorities trusted for their certificates, nil
// meaning the system pool.
func NewForwarder(directory Directory, tlsConfig *tls.Config) *Forwarder {
	return &Forwarder{
		directory: directory,
		timeout:   30 * time.Second,
		http: &http.Client{
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
				TLSClientConfig:     tlsConfig.Clone(),
				TLSHandshakeTimeout: 5 * time.Second,
				MaxIdleConnsPerHost: 8,
				IdleConnTimeout:     90 * time.Second,
			},
			// A redirect is relayed to the caller, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Forward sends r (whose body is body) to the nodes of zone in turn until
// one answers, and writes that answer to w. Only a node that could not be
// reached is skipped: once a request may have been delivered it is never
// sent twice. A request that came over TLS goes on only to https
// addresses: its token (and, for an import, maybe raw key material) never
// crosses the network in clear. It returns ErrUnreachable, having written
// nothing, when no node answers.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, zone string, body []byte) error {
	var lastErr error
	for _, p := range f.directory.Peers() {
		if p.Zone != zone {
			continue
		}
		if r.TLS != nil && !strings.HasPrefix(p.APIAddress, "https://") {
			lastErr = fmt.Errorf("node %s: a request that came over TLS is not forwarded to its plain http address", p.ID)
			continue
		}
		resp, err := f.send(r, p, body)
		if err != nil {
			var opErr *net.OpError
			if errors.As(err, &opErr) && opErr.Op == "dial" {
				lastErr = err
				continue
			}
			return fmt.Errorf("forward to %s: %w", p.ID, err)
		}
		defer resp.Body.Close()
		for _, h := range forwardedResponseHeaders {
			if v := resp.Header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, err = io.Copy(w, resp.Body)
		return err
	}
	if lastErr != nil {
		return fmt.Errorf("zone %s: %w (%v)", zone, ErrUnreachable, lastErr)
	}
	return fmt.Errorf("zone %s: %w", zone, ErrUnreachable)
}

func (f *Forwarder) send(r *http.Request, p Peer, body []byte) (*http.Response, error) {
	url := strings.TrimRight(p.APIAddress, "/") + r.URL.RequestURI()
	ctx, cancel := context.WithTimeout(r.Context(), f.timeout)
	req, err := http.NewRequestWithContext(ctx, r.Method, url, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	for _, h := range forwardedRequestHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := f.http.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose releases a request's timeout once its answer is read.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Close releases idle connections.
func (f *Forwarder) Close() { f.http.CloseIdleConnections() }
