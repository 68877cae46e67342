// Package wire holds the JSON shapes of Keyzone's HTTP API, shared by the
// server (package api) and the Go SDK (package client). It imports only the
// standard library, so the SDK pulls in nothing of the server.
//
// Binary fields are []byte and travel as standard base64 with padding.
// Durations travel as Go duration strings ("720h", "168h0m0s"); timestamps
// as RFC 3339 with nanoseconds, in UTC.
package wire

import "time"

// Key is a KMS key's metadata. It never carries key material.
type Key struct {
	ID             string         `json:"id"`
	Organization   string         `json:"organization"`
	Name           string         `json:"name"`
	Description    string         `json:"description"`
	Tags           []string       `json:"tags"` // [] when none, never null
	Usage          string         `json:"usage"`
	Algorithm      string         `json:"algorithm"`
	Origin         string         `json:"origin"`
	State          string         `json:"state"`
	Protected      bool           `json:"protected"`
	RotationPolicy RotationPolicy `json:"rotation_policy"`
	CurrentVersion uint32         `json:"current_version"`
	PrimaryZone    string         `json:"primary_zone"`
	ReplicaZones   []string       `json:"replica_zones"` // [] when none, never null
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	// DeletionAt is set only while the key is pending deletion.
	DeletionAt time.Time `json:"deletion_at,omitzero"`
	// Revision is the Raft index of the key's last change; send it back
	// in If-Match to make a change conditional.
	Revision uint64 `json:"revision"`
	// PendingVersion is set while a rotation of a multi-zone key waits
	// for replica zones: the new version is replicated but encrypts only
	// once every zone in PendingZones has applied it. Until then
	// CurrentVersion keeps encrypting.
	PendingVersion uint32   `json:"pending_version,omitempty"`
	PendingZones   []string `json:"pending_zones,omitempty"`
	// ReplicaSeq is set on a replica (a key whose PrimaryZone is another
	// zone): the primary zone's change-log sequence this copy reflects.
	ReplicaSeq uint64 `json:"replica_seq,omitempty"`
}

// RotationPolicy is a key's automatic rotation schedule as returned by the
// server.
type RotationPolicy struct {
	// RotationPeriod is a Go duration; "" means no automatic rotation.
	RotationPeriod string `json:"rotation_period"`
	// NextRotationAt is omitted when there is no automatic rotation.
	NextRotationAt time.Time `json:"next_rotation_at,omitzero"`
}

// RotationPolicySpec is the rotation policy a caller asks for.
type RotationPolicySpec struct {
	// RotationPeriod is a Go duration; "" or "0s" turns automatic rotation off.
	RotationPeriod string `json:"rotation_period"`
}

// KeyVersion describes one version of a key, without its material.
type KeyVersion struct {
	Number    uint32    `json:"number"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
}

// KeyVersions is the answer of GET /v1/keys/{id}/versions.
type KeyVersions struct {
	KeyID          string       `json:"key_id"`
	CurrentVersion uint32       `json:"current_version"`
	Versions       []KeyVersion `json:"versions"`
}

// CreateKeyRequest is the body of POST /v1/keys. Empty usage, algorithm
// and origin take the server's defaults (symmetric_encryption, aes_256_gcm,
// keyzone).
type CreateKeyRequest struct {
	Name           string             `json:"name"`
	Description    string             `json:"description,omitempty"`
	Tags           []string           `json:"tags,omitempty"`
	Usage          string             `json:"usage,omitempty"`
	Algorithm      string             `json:"algorithm,omitempty"`
	Origin         string             `json:"origin,omitempty"`
	Protected      bool               `json:"protected,omitempty"`
	RotationPolicy RotationPolicySpec `json:"rotation_policy,omitzero"`
	ReplicaZones   []string           `json:"replica_zones,omitempty"`
}

// UpdateKeyRequest is the body of PATCH /v1/keys/{id}. Nil fields are
// left alone; Tags replaces the whole list.
type UpdateKeyRequest struct {
	Name           *string             `json:"name,omitempty"`
	Description    *string             `json:"description,omitempty"`
	Tags           *[]string           `json:"tags,omitempty"`
	RotationPolicy *RotationPolicySpec `json:"rotation_policy,omitempty"`
}

// ListKeysResponse is one page of GET /v1/keys. NextPageToken is empty on
// the last page.
type ListKeysResponse struct {
	Keys          []Key  `json:"keys"`
	NextPageToken string `json:"next_page_token"`
}

// ScheduleDeletionRequest is the (optional) body of
// POST /v1/keys/{id}/schedule-deletion.
type ScheduleDeletionRequest struct {
	// PendingWindow is a Go duration; "" takes the server's default.
	PendingWindow string `json:"pending_window,omitempty"`
}

// EncryptRequest is the body of POST /v1/keys/{id}/encrypt. Use either
// EncryptionContext or AssociatedData, not both; decrypt must present the
// same.
type EncryptRequest struct {
	Plaintext         []byte            `json:"plaintext"`
	EncryptionContext map[string]string `json:"encryption_context,omitempty"`
	AssociatedData    []byte            `json:"associated_data,omitempty"`
}

// EncryptResponse is the answer of an encrypt.
type EncryptResponse struct {
	KeyID      string `json:"key_id"`
	KeyVersion uint32 `json:"key_version"`
	Ciphertext []byte `json:"ciphertext"`
}

// DecryptRequest is the body of POST /v1/decrypt and
// POST /v1/keys/{id}/decrypt.
type DecryptRequest struct {
	Ciphertext        []byte            `json:"ciphertext"`
	EncryptionContext map[string]string `json:"encryption_context,omitempty"`
	AssociatedData    []byte            `json:"associated_data,omitempty"`
}

// DecryptResponse is the answer of a decrypt.
type DecryptResponse struct {
	KeyID      string `json:"key_id"`
	KeyVersion uint32 `json:"key_version"`
	Plaintext  []byte `json:"plaintext"`
}

// GenerateDataKeyRequest is the body of
// POST /v1/keys/{id}/generate-data-key.
type GenerateDataKeyRequest struct {
	// KeySize is in bits: 128 or 256; 0 means 256.
	KeySize           int               `json:"key_size,omitempty"`
	WithoutPlaintext  bool              `json:"without_plaintext,omitempty"`
	EncryptionContext map[string]string `json:"encryption_context,omitempty"`
	AssociatedData    []byte            `json:"associated_data,omitempty"`
}

// GenerateDataKeyResponse carries the data key wrapped under the KMS key
// and, unless WithoutPlaintext was asked, in plaintext.
type GenerateDataKeyResponse struct {
	KeyID      string `json:"key_id"`
	KeyVersion uint32 `json:"key_version"`
	Plaintext  []byte `json:"plaintext,omitempty"`
	Ciphertext []byte `json:"ciphertext"`
}

// ReEncryptRequest is the body of POST /v1/re-encrypt and
// POST /v1/keys/{id}/re-encrypt. An empty DestinationKeyID re-encrypts
// under the current version of the ciphertext's own key.
type ReEncryptRequest struct {
	Ciphertext                   []byte            `json:"ciphertext"`
	EncryptionContext            map[string]string `json:"encryption_context,omitempty"`
	AssociatedData               []byte            `json:"associated_data,omitempty"`
	DestinationKeyID             string            `json:"destination_key_id,omitempty"`
	DestinationEncryptionContext map[string]string `json:"destination_encryption_context,omitempty"`
	DestinationAssociatedData    []byte            `json:"destination_associated_data,omitempty"`
}

// ReEncryptResponse is the answer of a re-encrypt: the new ciphertext and
// the key and version that made it.
type ReEncryptResponse struct {
	KeyID      string `json:"key_id"`
	KeyVersion uint32 `json:"key_version"`
	Ciphertext []byte `json:"ciphertext"`
}

// AddReplicaRequest is the body of POST /v1/keys/{id}/replicas: the zone
// to replicate the key to.
type AddReplicaRequest struct {
	Zone string `json:"zone"`
}

// NodeStatus describes one voter of a zone.
type NodeStatus struct {
	ID          string `json:"id"`
	APIAddress  string `json:"api_address"`
	RaftAddress string `json:"raft_address"`
	State       string `json:"state"` // leader, follower, or unreachable
}

// ClusterStatus is the answer of GET /v1/cluster/status: the answering
// node's view of its zone.
type ClusterStatus struct {
	Zone         string       `json:"zone"`
	NodeID       string       `json:"node_id"`
	Leader       string       `json:"leader"`
	Term         uint64       `json:"term"`
	Nodes        []NodeStatus `json:"nodes"`
	AppliedIndex uint64       `json:"applied_index"`
	CommitIndex  uint64       `json:"commit_index"`
}

// Peer is one voter of a zone, in the answer of GET /v1/cluster/peers.
type Peer struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
	APIAddress  string `json:"api_address"` // "" when the node was never seen in the gossip pool
	State       string `json:"state"`       // leader, follower, or unreachable
	// LastContact is how long ago the node last heard from its leader, as
	// the node reports it ("0s" on the leader); "" when it did not answer.
	LastContact string `json:"last_contact"`
	// AppliedIndex is the node's own applied Raft index; null when it did
	// not answer.
	AppliedIndex *uint64 `json:"applied_index"`
}

// PeersResponse is the answer of GET /v1/cluster/peers: every voter of the
// answering node's zone.
type PeersResponse struct {
	Peers []Peer `json:"peers"` // [] when none, never null
}

// TransferLeadershipRequest is the body of POST
// /v1/cluster/transfer-leadership; an empty NodeID lets the leader pick
// the most up-to-date voter.
type TransferLeadershipRequest struct {
	NodeID string `json:"node_id"`
}

// ZoneNode is a live node of a zone, as the gossip pool sees it.
type ZoneNode struct {
	ID         string `json:"id"`
	APIAddress string `json:"api_address"`
}

// ZoneStatus is the answering node's view of one zone of the deployment.
// Every field is always present. ChangeSeq, the head of the zone's
// change log, is set on the local zone only. For a remote zone, Applied is
// the remote zone's change-log sequence the local zone has applied (its
// primaries replicated here), Acked the local zone's sequence the remote
// zone has applied (our primaries replicated there), and LagEntries how
// far Acked is behind the local ChangeSeq; they are 0 on the local zone.
type ZoneStatus struct {
	Name       string     `json:"name"`
	Local      bool       `json:"local"`
	Nodes      []ZoneNode `json:"nodes"` // [] when no live node is known, never null
	ChangeSeq  uint64     `json:"change_seq"`
	Applied    uint64     `json:"applied"`
	Acked      uint64     `json:"acked"`
	LagEntries uint64     `json:"lag_entries"`
	// LagSeconds is the age of the oldest change of the answering zone
	// that this zone has not acknowledged (0 when none).
	LagSeconds float64 `json:"lag_seconds"`
}

// ZonesResponse is the answer of GET /v1/zones: the local zone first,
// then the others by name.
type ZonesResponse struct {
	Zones []ZoneStatus `json:"zones"`
}

// KeyDigest is what one zone holds of a multi-zone key, reduced to what
// must agree between the key's primary zone and its replica zones.
type KeyDigest struct {
	KeyID        string   `json:"key_id"`
	PrimaryZone  string   `json:"primary_zone"`
	ReplicaZones []string `json:"replica_zones"` // [] when none, never null
	// Digest is the hex SHA-256 of the key's replicated state: everything
	// but its zone-local revision and replica sequence.
	Digest string `json:"digest"`
	// ReplicaSeq is the primary zone's change-log sequence this state
	// corresponds to: the entry a replica applied, or on the primary the
	// key's newest entry. A replica with a lower sequence lags behind;
	// one with the same sequence and another digest has diverged.
	ReplicaSeq uint64 `json:"replica_seq"`
}

// DigestReport is the answer of GET /v1/cluster/digest: the digests of
// every multi-zone key the answering node's zone holds, primaries and
// replicas, sorted by key id, as of a consistent read in that zone.
type DigestReport struct {
	Zone string `json:"zone"`
	Node string `json:"node"` // the node that answered
	// ChangeSeq is the head of the zone's change log; the digests reflect
	// at least this sequence.
	ChangeSeq uint64      `json:"change_seq"`
	Keys      []KeyDigest `json:"keys"` // [] when none, never null
}

// Health is the body of GET /v1/health, sent with 200 when Ready (degraded
// or not) and 503 otherwise, and of GET /v1/health/live (always 200 while
// the node serves; only Status, Live, NodeID and Zone are set).
type Health struct {
	// Status sums the rest up: "ready", "degraded" (ready, with Reasons),
	// "not_ready" or, from the liveness route, "live".
	Status   string `json:"status"`
	Live     bool   `json:"live"`
	Ready    bool   `json:"ready"`
	Degraded bool   `json:"degraded"`
	// Reason is the first of Reasons, which say why the node is not ready
	// or is degraded, most important first.
	Reason  string   `json:"reason,omitempty"`
	Reasons []string `json:"reasons,omitempty"`

	NodeID string `json:"node_id,omitempty"`
	Zone   string `json:"zone,omitempty"`
	// RaftState is leader, follower, candidate or shutdown.
	RaftState    string `json:"raft_state,omitempty"`
	Leader       string `json:"leader,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	// LeaderIndex is the leader's applied index a follower compared its
	// own with.
	LeaderIndex uint64 `json:"leader_index,omitempty"`
}

// Health statuses.
const (
	HealthReady    = "ready"
	HealthDegraded = "degraded"
	HealthNotReady = "not_ready"
	HealthLive     = "live"
)

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a stable, machine-readable Code and a human-readable Message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes the server sends. They are stable: clients may switch on them.
const (
	CodeInvalidArgument      = "invalid_argument"
	CodeUnauthorized         = "unauthorized"
	CodeNotFound             = "not_found" // no such route
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeKeyNotFound          = "key_not_found"
	CodeKeyExists            = "key_exists"
	CodeRevisionMismatch     = "revision_mismatch"
	CodeVersionConflict      = "version_conflict"
	CodeKeyProtected         = "key_protected"
	CodeInvalidState         = "invalid_state"
	CodeKeyDisabled          = "key_disabled"
	CodeNotPrimary           = "not_primary"      // a lifecycle change of a replica: make it in the primary zone
	CodeRotationPending      = "rotation_pending" // the previous rotation still waits for replica zones
	CodeDecryptFailed        = "decrypt_failed"
	CodePayloadTooLarge      = "payload_too_large"
	CodePeerNotFound         = "peer_not_found"         // no voter with this id in the zone
	CodeLastVoter            = "last_voter"             // removing it would leave the zone without voters
	CodePeerIsLeader         = "peer_is_leader"         // transfer leadership before removing the leader
	CodeInvalidSnapshot      = "invalid_snapshot"       // not a snapshot archive, or it fails a checksum or its MAC
	CodeSnapshotMismatch     = "snapshot_mismatch"      // the archive is of another root key or zone
	CodeForbidden            = "forbidden"              // the token's role may not call the route, or may not use the key
	CodeRateLimited          = "rate_limited"           // the organization's request rate limit; see Retry-After
	CodeOrganizationNotFound = "organization_not_found" // also another organization's
	CodeOrganizationExists   = "organization_exists"
	CodeTokenNotFound        = "token_not_found"
	CodeQuotaExceeded        = "quota_exceeded" // the organization holds its quota of keys in this zone
	CodeDefaultKey           = "default_key"    // the default key can't be deleted, disabled or unprotected
	CodeUnavailable          = "unavailable"
	CodeTimeout              = "timeout"
	CodeCanceled             = "canceled"
	CodeInternal             = "internal"
)
