package apitest

import (
	"bytes"
	"context"
	"io"

	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/snapshot"
)

// SaveSnapshot implements api.ClusterService with Archive.
func (c *Cluster) SaveSnapshot(ctx context.Context) (*cluster.Backup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &cluster.Backup{ReadCloser: io.NopCloser(bytes.NewReader(c.Archive)), Size: int64(len(c.Archive))}, nil
}

// RestoreSnapshot implements api.ClusterService: it reads the archive as
// a node does, minus the MAC and the root key check.
func (c *Cluster) RestoreSnapshot(ctx context.Context, r io.Reader) (snapshot.Meta, error) {
	var state bytes.Buffer
	m, err := snapshot.Read(r, &state, snapshot.ReadOptions{MaxState: 1 << 20})
	if err != nil {
		return snapshot.Meta{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Restored = state.Bytes()
	return m, nil
}

// Removed implements api.ClusterService with RemovedResult.
func (c *Cluster) Removed() (fsm.RemovedNode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.RemovedResult == nil {
		return fsm.RemovedNode{}, false
	}
	return *c.RemovedResult, true
}
