package client

import (
	"context"
	"net/http"

	"github.com/keyzone/keyzone/api/wire"
)

// Digest returns the digests of every multi-zone key the answering node's
// zone holds (GET /v1/cluster/digest), as of a consistent read in that
// zone. Comparing the reports of every zone is what package verify does.
func (c *Client) Digest(ctx context.Context, opts ...CallOption) (wire.DigestReport, error) {
	var out wire.DigestReport
	err := c.do(ctx, http.MethodGet, "/v1/cluster/digest", nil, nil, &out, opts)
	return out, err
}
