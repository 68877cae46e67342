package wire

import "time"

// SnapshotMeta answers PUT /v1/cluster/snapshot: what the restored
// archive held.
type SnapshotMeta struct {
	Format      int       `json:"format"`
	CreatedAt   time.Time `json:"created_at"`
	Zone        string    `json:"zone,omitempty"`
	NodeID      string    `json:"node_id"`
	RekID       string    `json:"rek_id"`
	Index       uint64    `json:"index"`
	Term        uint64    `json:"term"`
	StateFormat int       `json:"state_format"`
	StateSize   int64     `json:"state_size"`
	StateSHA256 string    `json:"state_sha256"`
	Keys        int       `json:"keys"`
}
