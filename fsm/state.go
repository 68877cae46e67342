package fsm

import "slices"

// KeyState is the lifecycle state of a KMS key. States are strings so that
// JSON, logs and snapshots read well.
type KeyState string

const (
	// KeyStateEnabled keys encrypt with their current version and decrypt
	// with any non-destroyed version.
	KeyStateEnabled KeyState = "enabled"
	// KeyStateDisabled keys refuse every crypto operation until enabled.
	KeyStateDisabled KeyState = "disabled"
	// KeyStatePendingDeletion keys refuse crypto and are purged by the
	// leader once DeletionAt has passed, unless the deletion is cancelled.
	KeyStatePendingDeletion KeyState = "pending_deletion"
	// KeyStatePendingImport keys (origin external) wait for their first
	// imported version.
	KeyStatePendingImport KeyState = "pending_import"
)

// VersionState is the state of one key version.
type VersionState string

const (
	// VersionStateEnabled versions decrypt (and the current one encrypts).
	VersionStateEnabled VersionState = "enabled"
	// VersionStateDestroyed versions had their wrapped material erased by a purge.
	VersionStateDestroyed VersionState = "destroyed"
)

// Key usages, algorithms and origins accepted today.
const (
	UsageSymmetricEncryption = "symmetric_encryption"
	AlgorithmAES256GCM       = "aes_256_gcm"
	OriginKeyzone            = "keyzone"
	OriginExternal           = "external"
)

// DefaultOrganization owns every key until tenancy lands.
const DefaultOrganization = "default"

// Version is one key version. Material is always wrapped under the REK
// identified by RekID; the FSM never sees plaintext material.
type Version struct {
	Number    uint32       `json:"number"`
	Wrapped   []byte       `json:"wrapped,omitempty"`
	RekID     string       `json:"rek_id"`
	CreatedAt int64        `json:"created_at"` // unix ns, chosen by the proposer
	State     VersionState `json:"state"`
}

// RotationPolicy says when the leader rotates a key on its own. A zero
// Period means no automatic rotation.
type RotationPolicy struct {
	Period         int64 `json:"period"`           // nanoseconds
	NextRotationAt int64 `json:"next_rotation_at"` // unix ns; 0 when Period is 0
}

// Key is a KMS key as held in the replicated state. Stored keys are
// immutable: Apply copies, changes and stores a new value, so a *Key
// returned by a query may be read without locks but must never be mutated.
type Key struct {
	ID             string         `json:"id"`
	Organization   string         `json:"organization"`
	Name           string         `json:"name"`
	Description    string         `json:"description"`
	Tags           []string       `json:"tags"`
	Usage          string         `json:"usage"`
	Algorithm      string         `json:"algorithm"`
	Origin         string         `json:"origin"`
	State          KeyState       `json:"state"`
	Protected      bool           `json:"protected"`
	RotationPolicy RotationPolicy `json:"rotation_policy"`
	Versions       []Version      `json:"versions"`
	CurrentVersion uint32         `json:"current_version"`
	PrimaryZone    string         `json:"primary_zone"`
	ReplicaZones   []string       `json:"replica_zones"`
	CreatedAt      int64          `json:"created_at"`
	UpdatedAt      int64          `json:"updated_at"`
	DeletionAt     int64          `json:"deletion_at"` // unix ns; 0 unless pending deletion
	Revision       uint64         `json:"revision"`    // Raft index of the last change

	// Two-phase rotation of a multi-zone key: the newest version is
	// replicated first and becomes current only once every zone in
	// PendingZones has applied the change-log entry PendingSeq that
	// carried it. Until then CurrentVersion keeps encrypting.
	PendingVersion uint32   `json:"pending_version,omitempty"`
	PendingZones   []string `json:"pending_zones,omitempty"`
	PendingSeq     uint64   `json:"pending_seq,omitempty"`
	// ReplicaSeq is, on a replica, the primary zone's change-log sequence
	// this copy reflects; 0 on a primary.
	ReplicaSeq uint64 `json:"replica_seq,omitempty"`
	// PrimaryEpoch counts the moves of the key's primary zone. A zone
	// applies another zone's entry for a key only if its epoch is higher
	// than the copy it holds, or equal and sent by the copy's primary, so
	// a forced takeover wins over the old primary when it comes back.
	PrimaryEpoch uint64 `json:"primary_epoch,omitempty"`
	// Default marks an organization's default key (see Organization).
	Default bool `json:"default,omitempty"`
}

// IsReplicaIn reports whether the key, as held in zone, is a replica of a
// primary in another zone. With zone "" (a single-zone state machine)
// every key is local.
func (k *Key) IsReplicaIn(zone string) bool {
	return zone != "" && k.PrimaryZone != "" && k.PrimaryZone != zone
}

// Version returns the version numbered n, or false.
func (k *Key) Version(n uint32) (Version, bool) {
	if n == 0 || int(n) > len(k.Versions) {
		return Version{}, false
	}
	v := k.Versions[n-1]
	return v, v.Number == n
}

// clone returns a deep copy, so Apply can change it without touching the
// value readers may hold. Empty lists stay empty (not nil), so that they
// keep encoding as [] rather than null.
func (k *Key) clone() *Key {
	c := *k
	c.Tags = slices.Clone(k.Tags)
	c.ReplicaZones = slices.Clone(k.ReplicaZones)
	c.PendingZones = slices.Clone(k.PendingZones)
	c.Versions = make([]Version, len(k.Versions))
	for i, v := range k.Versions {
		v.Wrapped = append([]byte(nil), v.Wrapped...)
		c.Versions[i] = v
	}
	return &c
}

// Tombstone records a purged key so that its id is never reused and a
// ciphertext naming it fails as "not found" for good.
type Tombstone struct {
	ID           string `json:"id"`
	Organization string `json:"organization"`
	PurgedAt     int64  `json:"purged_at"`
	// PrimaryZone and PrimaryEpoch are the key's at its purge, so that a
	// purge and a key state from other zones are ordered like key states.
	PrimaryZone  string `json:"primary_zone,omitempty"`
	PrimaryEpoch uint64 `json:"primary_epoch,omitempty"`
}

// IdempotencyRecord remembers the outcome of a create or rotate proposed
// with an Idempotency-Key, so that a retry returns the first result.
type IdempotencyRecord struct {
	Scope     string `json:"scope"` // organization + "/" + operation + "/" + token
	KeyID     string `json:"key_id"`
	Version   uint32 `json:"version,omitempty"`
	ExpiresAt int64  `json:"expires_at"` // unix ns
}
