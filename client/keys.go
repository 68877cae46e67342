package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyzone/keyzone/api/wire"
)

// CreateKey creates a key (POST /v1/keys). Pass IdempotencyKey to make a
// retry safe.
func (c *Client) CreateKey(ctx context.Context, req wire.CreateKeyRequest, opts ...CallOption) (wire.Key, error) {
	var k wire.Key
	err := c.do(ctx, http.MethodPost, "/v1/keys", nil, req, &k, opts)
	return k, err
}

// GetKey returns a key's metadata (GET /v1/keys/{id}); Stale allows a
// local read.
func (c *Client) GetKey(ctx context.Context, id string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodGet, id, "", nil, opts)
}

// ListKeysOptions filters and pages ListKeys. Zero fields are left out.
type ListKeysOptions struct {
	Name      string
	Tag       string
	State     string
	PageSize  int
	PageToken string // NextPageToken of the previous page
	Stale     bool
}

// ListKeys returns one page of keys (GET /v1/keys).
func (c *Client) ListKeys(ctx context.Context, o ListKeysOptions, opts ...CallOption) (wire.ListKeysResponse, error) {
	q := url.Values{}
	for name, v := range map[string]string{"name": o.Name, "tag": o.Tag, "state": o.State, "page_token": o.PageToken} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if o.PageSize != 0 {
		q.Set("page_size", strconv.Itoa(o.PageSize))
	}
	if o.Stale {
		q.Set("stale", "true")
	}
	var out wire.ListKeysResponse
	err := c.do(ctx, http.MethodGet, "/v1/keys", q, nil, &out, opts)
	return out, err
}

// UpdateKey changes a key's metadata (PATCH /v1/keys/{id}); nil fields of
// req are left alone.
func (c *Client) UpdateKey(ctx context.Context, id string, req wire.UpdateKeyRequest, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPatch, id, "", req, opts)
}

// EnableKey enables a disabled key.
func (c *Client) EnableKey(ctx context.Context, id string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "enable", nil, opts)
}

// DisableKey disables a key: it refuses crypto until enabled.
func (c *Client) DisableKey(ctx context.Context, id string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "disable", nil, opts)
}

// ProtectKey makes a key refuse deletion.
func (c *Client) ProtectKey(ctx context.Context, id string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "protect", nil, opts)
}

// UnprotectKey lets a key be deleted again.
func (c *Client) UnprotectKey(ctx context.Context, id string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "unprotect", nil, opts)
}

// RotateKey adds a key version that becomes the encrypting one. Pass
// IdempotencyKey to make a retry safe.
func (c *Client) RotateKey(ctx context.Context, id string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "rotate", nil, opts)
}

// ScheduleDeletion schedules a key's deletion after window; 0 takes the
// server's default window.
func (c *Client) ScheduleDeletion(ctx context.Context, id string, window time.Duration, opts ...CallOption) (wire.Key, error) {
	var req wire.ScheduleDeletionRequest
	if window != 0 {
		req.PendingWindow = window.String()
	}
	return c.keyCall(ctx, http.MethodPost, id, "schedule-deletion", req, opts)
}

// CancelDeletion keeps a key pending deletion; it comes back disabled.
func (c *Client) CancelDeletion(ctx context.Context, id string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "cancel-deletion", nil, opts)
}

// KeyVersions lists a key's versions, without material
// (GET /v1/keys/{id}/versions); Stale allows a local read.
func (c *Client) KeyVersions(ctx context.Context, id string, opts ...CallOption) (wire.KeyVersions, error) {
	var out wire.KeyVersions
	p, err := keyPath(id, "versions")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &out, opts)
	return out, err
}

// AddReplica replicates a key to zone (POST /v1/keys/{id}/replicas). The
// call goes to the key's primary zone; a replica answers 409 not_primary.
// IfMatch makes it conditional on the key's revision.
func (c *Client) AddReplica(ctx context.Context, id, zone string, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, http.MethodPost, id, "replicas", wire.AddReplicaRequest{Zone: zone}, opts)
}

// RemoveReplica stops replicating a key to zone, which deletes its copy
// (DELETE /v1/keys/{id}/replicas/{zone}). IfMatch makes it conditional on
// the key's revision.
func (c *Client) RemoveReplica(ctx context.Context, id, zone string, opts ...CallOption) (wire.Key, error) {
	if zone == "" || zone == "." || zone == ".." || strings.Contains(zone, "/") {
		// As a path segment these would name another route (the server
		// decodes %2F before routing), or be normalised away by a proxy.
		return wire.Key{}, fmt.Errorf("keyzone: invalid zone name %q", zone)
	}
	return c.keyCall(ctx, http.MethodDelete, id, "replicas/"+url.PathEscape(zone), nil, opts)
}

func (c *Client) keyCall(ctx context.Context, method, id, op string, in any, opts []CallOption) (wire.Key, error) {
	var k wire.Key
	p, err := keyPath(id, op)
	if err != nil {
		return k, err
	}
	err = c.do(ctx, method, p, nil, in, &k, opts)
	return k, err
}

// ClusterStatus returns the answering node's view of its zone.
func (c *Client) ClusterStatus(ctx context.Context, opts ...CallOption) (wire.ClusterStatus, error) {
	var out wire.ClusterStatus
	err := c.do(ctx, http.MethodGet, "/v1/cluster/status", nil, nil, &out, opts)
	return out, err
}

// Zones returns the answering node's view of every zone of the
// deployment (GET /v1/zones): its own first, then the others by name, with
// their live nodes and replication progress.
func (c *Client) Zones(ctx context.Context, opts ...CallOption) (wire.ZonesResponse, error) {
	var out wire.ZonesResponse
	err := c.do(ctx, http.MethodGet, "/v1/zones", nil, nil, &out, opts)
	return out, err
}

// Health returns the node's health (GET /v1/health, no token needed). A
// node that is not ready answers 503 with its Health, which is returned
// without error: check Ready, then Degraded and Reasons.
func (c *Client) Health(ctx context.Context, opts ...CallOption) (wire.Health, error) {
	var out wire.Health
	err := c.do(ctx, http.MethodGet, "/v1/health", nil, nil, &out, opts, http.StatusServiceUnavailable)
	return out, err
}

// Live asks the node's liveness probe (GET /v1/health/live, no token
// needed), which answers while the process serves, ready or not.
func (c *Client) Live(ctx context.Context, opts ...CallOption) (wire.Health, error) {
	var out wire.Health
	err := c.do(ctx, http.MethodGet, "/v1/health/live", nil, nil, &out, opts)
	return out, err
}
