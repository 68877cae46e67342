package client

import (
	"context"

	"github.com/keyzone/keyzone/api/wire"
)

// UpdatePrimary makes zone, one of the key's replica zones, its primary.
// Sent to any zone, it is carried out by the current primary zone; with
// force it goes ahead even when zone has not applied the key's last
// change, and, sent to a node of zone while the primary zone is
// unreachable, zone takes the key over alone.
func (c *Client) UpdatePrimary(ctx context.Context, id, zone string, force bool, opts ...CallOption) (wire.Key, error) {
	return c.keyCall(ctx, "POST", id, "update-primary", wire.UpdatePrimaryRequest{PrimaryZone: zone, Force: force}, opts)
}
