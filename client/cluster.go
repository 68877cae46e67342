package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/keyzone/keyzone/api/wire"
)

// Peers lists every voter of the answering node's zone with its Raft and
// API address, state, last contact and applied index.
func (c *Client) Peers(ctx context.Context, opts ...CallOption) (wire.PeersResponse, error) {
	var out wire.PeersResponse
	err := c.do(ctx, http.MethodGet, "/v1/cluster/peers", nil, nil, &out, opts)
	return out, err
}

// RemovePeer removes the voter nodeID from the zone's Raft configuration
// (DELETE /v1/cluster/peers/{id}). Stop the node first; it can rejoin
// only under a new id with a wiped data dir.
func (c *Client) RemovePeer(ctx context.Context, nodeID string, opts ...CallOption) error {
	if nodeID == "" {
		return errors.New("keyzone: empty node id")
	}
	return c.do(ctx, http.MethodDelete, "/v1/cluster/peers/"+url.PathEscape(nodeID), nil, nil, nil, opts)
}

// TransferLeadership asks the zone's leader to hand leadership to nodeID,
// or to the most up-to-date voter when nodeID is "". It returns once the
// old leader has stepped down.
func (c *Client) TransferLeadership(ctx context.Context, nodeID string, opts ...CallOption) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/transfer-leadership", nil, wire.TransferLeadershipRequest{NodeID: nodeID}, nil, opts)
}
