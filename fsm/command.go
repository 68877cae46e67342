package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// CommandType names a command. Values are explicit, start at 1, are
// append-only, and a retired number is never reused. A type with the high
// bit set may be ignored by a node that does not know it; any other
// unknown type stops the node rather than let it diverge.
type CommandType uint16

// IgnorableCommandFlag marks a command type an older node may skip.
const IgnorableCommandFlag CommandType = 1 << 15

const (
	// CmdCreateKey creates a key with its first version (CreateKeyV1). Since v1.
	CmdCreateKey CommandType = 1
	// CmdUpdateKey changes name, description, tags or rotation policy (UpdateKeyV1). Since v1.
	CmdUpdateKey CommandType = 2
	// CmdEnableKey moves a disabled key to enabled (KeyRefV1). Since v1.
	CmdEnableKey CommandType = 3
	// CmdDisableKey moves an enabled key to disabled (KeyRefV1). Since v1.
	CmdDisableKey CommandType = 4
	// CmdProtectKey sets the protected flag, which refuses deletion (KeyRefV1). Since v1.
	CmdProtectKey CommandType = 5
	// CmdUnprotectKey clears the protected flag (KeyRefV1). Since v1.
	CmdUnprotectKey CommandType = 6
	// CmdRotateKey adds a version that becomes the encrypting one (RotateKeyV1). Since v1.
	CmdRotateKey CommandType = 7
	// CmdScheduleDeletion moves a key to pending_deletion (ScheduleDeletionV1). Since v1.
	CmdScheduleDeletion CommandType = 8
	// CmdCancelDeletion moves a pending_deletion key to disabled (KeyRefV1). Since v1.
	CmdCancelDeletion CommandType = 9
	// CmdPurgeKey destroys a key whose deletion time has passed, leaving a
	// tombstone (PurgeKeyV1). Proposed by the leader's ticker. Since v1.
	CmdPurgeKey CommandType = 10
	// CmdExpireIdempotency drops idempotency records that expired before
	// Now (ExpireIdempotencyV1). Proposed by the leader's ticker. Since v1.
	CmdExpireIdempotency CommandType = 11
	// CmdApplyChanges applies a batch of another zone's change log to the
	// replica keys of this zone (ApplyChangesV1). Proposed by this zone's
	// puller of that zone. Since v2 (multi-zone).
	CmdApplyChanges CommandType = 12
	// CmdReplicaAck records that a replica zone has applied this zone's
	// change log up to a sequence, and promotes the pending versions that
	// were waiting only for it (ReplicaAckV1). Proposed by the node that
	// served the replica zone's pull. Since v2.
	CmdReplicaAck CommandType = 13
	// CmdSetReplicaZones replaces the replica zones of a primary key
	// (SetReplicaZonesV1). Since v2.
	CmdSetReplicaZones CommandType = 14
	// CmdUpdatePrimary moves a multi-zone key's primary to one of its
	// replica zones (UpdatePrimaryV1). Since v2.
	CmdUpdatePrimary CommandType = 15
	// CmdRemoveNode records that a node id was removed from the zone
	// (RemoveNodeV1), so that every leader keeps it out and the node
	// learns why. Proposed by the leader before it removes the voter.
	// Since v3 (cluster administration).
	CmdRemoveNode CommandType = 16
	// CmdRenumberChanges moves the zone's change log above a sequence
	// (RenumberChangesV1): after a restore from a backup, the other zones
	// have applied sequences the restored log hands out again, so every
	// entry is logged anew above them. Since v3.
	CmdRenumberChanges CommandType = 17
	// CmdSetImportParams makes an X25519 key pair and an import token the
	// current import parameters of a key of origin external
	// (SetImportParamsV1). Since v4 (BYOK).
	CmdSetImportParams CommandType = 18
	// CmdImportKeyMaterial adds a version derived from imported material,
	// consuming the import parameters (ImportKeyMaterialV1). Since v4.
	CmdImportKeyMaterial CommandType = 19
)

// CommandVersion1 is the only payload version so far.
const CommandVersion1 uint16 = 1

// Command is the envelope of every Raft log entry. Payload is the JSON of
// the payload struct that Type and Version name.
type Command struct {
	Type    CommandType     `json:"type"`
	Version uint16          `json:"version"`
	Payload json.RawMessage `json:"payload"`
	// marshaled says Payload is json.Marshal's output (compact, valid,
	// HTML-escaped), which json.Marshal of the Command would copy as is.
	marshaled bool
}

// NewCommand encodes payload as a version-1 command of type t.
func NewCommand(t CommandType, payload any) (Command, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Command{}, fmt.Errorf("encode command %d: %w", t, err)
	}
	return Command{Type: t, Version: CommandVersion1, Payload: raw, marshaled: true}, nil
}

// Encode returns the bytes proposed to Raft: json.Marshal's, written
// without scanning a payload NewCommand made (json.Marshal would check
// and compact it once more).
func (c Command) Encode() ([]byte, error) {
	if !c.marshaled {
		return json.Marshal(c)
	}
	b := make([]byte, 0, len(c.Payload)+48)
	b = append(b, `{"type":`...)
	b = strconv.AppendUint(b, uint64(c.Type), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, uint64(c.Version), 10)
	b = append(b, `,"payload":`...)
	b = append(b, c.Payload...)
	return append(b, '}'), nil
}

// CheckCommand reports whether Apply can decode c: Apply panics on an
// entry it can't decode (a node that cannot apply the log stops rather
// than diverge), so a proposer refuses such a command before it reaches
// the log. It decodes the payload as Apply would, and changes nothing.
func CheckCommand(c Command) error {
	if _, err := decodePayload(c); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidCommand, err)
	}
	return nil
}

// DecodeCommand parses bytes produced by Encode.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	return c, nil
}

// Idempotency carries the caller's Idempotency-Key into a create or
// rotate. An empty Token means none. Apply remembers the outcome under
// (organization, operation, token) until ExpiresAt; while remembered, a
// repeat returns the first outcome and changes nothing.
type Idempotency struct {
	Token     string `json:"token,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"` // unix ns
}

// CreateKeyV1 is the payload of CmdCreateKey. The proposer chooses ID,
// Now and the first version (already wrapped). Apply refuses an ID that
// exists or is tombstoned.
type CreateKeyV1 struct {
	ID             string         `json:"id"`
	Organization   string         `json:"organization"`
	Name           string         `json:"name"`
	Description    string         `json:"description"`
	Tags           []string       `json:"tags"`
	Usage          string         `json:"usage"`
	Algorithm      string         `json:"algorithm"`
	Origin         string         `json:"origin"`
	Protected      bool           `json:"protected"`
	RotationPolicy RotationPolicy `json:"rotation_policy"`
	PrimaryZone    string         `json:"primary_zone"`
	ReplicaZones   []string       `json:"replica_zones"`
	// FirstVersion has Number 1. It is absent (Number 0) for origin
	// external, whose key starts in pending_import.
	FirstVersion Version     `json:"first_version"`
	Now          int64       `json:"now"`
	Idempotency  Idempotency `json:"idempotency"`
}

// KeyRefV1 names a key for a change without arguments. IfRevision, when
// non-zero, must equal the key's Revision (If-Match) or Apply refuses with
// ErrRevisionMismatch.
type KeyRefV1 struct {
	KeyID        string `json:"key_id"`
	Organization string `json:"organization"`
	IfRevision   uint64 `json:"if_revision,omitempty"`
	Now          int64  `json:"now"`
}

// UpdateKeyV1 is the payload of CmdUpdateKey. Nil fields are left alone.
// A RotationPolicy replaces the key's policy; the proposer computes its
// NextRotationAt (0 when Period is 0).
type UpdateKeyV1 struct {
	KeyRefV1
	Name           *string         `json:"name,omitempty"`
	Description    *string         `json:"description,omitempty"`
	Tags           *[]string       `json:"tags,omitempty"`
	RotationPolicy *RotationPolicy `json:"rotation_policy,omitempty"`
}

// RotateKeyV1 is the payload of CmdRotateKey. NewVersion.Number must be
// one more than the key's newest version, or Apply refuses with
// ErrVersionConflict (the proposer then retries with fresh material).
// Scheduled rotations come from the leader and set NextRotationAt to the
// next due time; manual rotations leave the schedule alone.
type RotateKeyV1 struct {
	KeyRefV1
	NewVersion     Version     `json:"new_version"`
	Scheduled      bool        `json:"scheduled,omitempty"`
	NextRotationAt int64       `json:"next_rotation_at,omitempty"`
	Idempotency    Idempotency `json:"idempotency"`
}

// ScheduleDeletionV1 is the payload of CmdScheduleDeletion. The proposer
// checks the window against the server's bounds and sets DeletionAt.
type ScheduleDeletionV1 struct {
	KeyRefV1
	DeletionAt int64 `json:"deletion_at"` // unix ns
}

// PurgeKeyV1 is the payload of CmdPurgeKey. Apply purges only a key still
// pending deletion whose DeletionAt is not after Now, so a purge racing a
// cancel is refused rather than destroying a key the user kept.
type PurgeKeyV1 struct {
	KeyID string `json:"key_id"`
	Now   int64  `json:"now"`
}

// ExpireIdempotencyV1 is the payload of CmdExpireIdempotency.
type ExpireIdempotencyV1 struct {
	Now int64 `json:"now"`
}

// ChangeEntry is one entry of a zone's change log: the full replicated
// state of a multi-zone primary key after a change (state-based, so
// applying it is idempotent and only the newest entry per key matters),
// or the tombstone of a purged one. The log keeps one entry per key.
//
// The home zone's log also carries the tenancy records (organizations and
// tokens), each in a slot of its own: KeyID is then "org:<id>" or
// "token:<id>" and exactly one of Organization and Token is set.
type ChangeEntry struct {
	Seq          uint64        `json:"seq"`
	KeyID        string        `json:"key_id"`
	Key          *Key          `json:"key,omitempty"`
	Tombstone    *Tombstone    `json:"tombstone,omitempty"`
	Organization *Organization `json:"organization,omitempty"`
	Token        *Token        `json:"token,omitempty"`
}

// ApplyChangesV1 is the payload of CmdApplyChanges: every entry of
// SourceZone's compacted change log with a sequence in (After, Upto], in
// ascending order. Apply skips a batch it has already applied (Upto not
// beyond what it has) and refuses one that does not start where it left
// off (After differs): a gap.
type ApplyChangesV1 struct {
	SourceZone string        `json:"source_zone"`
	After      uint64        `json:"after"`
	Upto       uint64        `json:"upto"`
	Entries    []ChangeEntry `json:"entries"`
	Now        int64         `json:"now"`
}

// ReplicaAckV1 is the payload of CmdReplicaAck: Zone has applied this
// zone's change log up to Seq.
type ReplicaAckV1 struct {
	Zone string `json:"zone"`
	Seq  uint64 `json:"seq"`
	Now  int64  `json:"now"`
	// Disputed lists keys whose entries Zone refused from this zone's log
	// (it holds a newer primary of them): the ack does not cover them.
	Disputed []string `json:"disputed,omitempty"`
}

// SetReplicaZonesV1 is the payload of CmdSetReplicaZones. ReplicaZones is
// the new complete set (sorted, without this zone).
type SetReplicaZonesV1 struct {
	KeyRefV1
	ReplicaZones []string `json:"replica_zones"`
}

// UpdatePrimaryV1 is the payload of CmdUpdatePrimary. Applied in the
// primary zone, it hands the key over to NewPrimary (one of its replica
// zones), which must have applied the key's last change unless Force. Applied
// with Force in NewPrimary's own zone while the key is a replica there, it
// takes the key over without the old primary (which is unreachable): the
// old primary accepts the new state when it comes back and loses what it
// changed that this zone never received.
type UpdatePrimaryV1 struct {
	KeyRefV1
	NewPrimary string `json:"new_primary"`
	Force      bool   `json:"force,omitempty"`
}

// RemoveNodeV1 is the payload of CmdRemoveNode. The proposer sets
// RemovedAt. Zone must be the FSM's zone (any zone for a single-zone
// FSM). Recording an id already recorded changes nothing: the first
// removal time stays.
type RemoveNodeV1 struct {
	NodeID    string `json:"node_id"`
	Zone      string `json:"zone"`
	RemovedAt int64  `json:"removed_at"` // unix ns
}

// Tenancy commands (Since v5). They are proposed in the deployment's home
// zone only; other zones learn of them through its change log.
const (
	// CmdCreateOrganization creates an organization and its default key
	// (CreateOrganizationV1).
	CmdCreateOrganization CommandType = 20
	// CmdUpdateOrganization changes an organization's quota or rate
	// limit (UpdateOrganizationV1).
	CmdUpdateOrganization CommandType = 21
	// CmdCreateToken adds a token to an organization (CreateTokenV1).
	CmdCreateToken CommandType = 22
	// CmdRevokeToken revokes a token (RevokeTokenV1).
	CmdRevokeToken CommandType = 23
)

// CreateOrganizationV1 is the payload of CmdCreateOrganization. The
// proposer chooses the organization's id, its home zone (this zone), its
// quota and limits, and the default key, whose Organization is the new
// id and whose ReplicaZones are every other zone of the deployment.
// Apply refuses an id or a name already taken (ErrOrganizationExists),
// except for a repeat of the same creation (same name, home zone,
// creation time and default key id), which returns the stored records;
// it stores the key marked Default and Protected, and it logs both
// records. The default key needs a rotation policy and origin keyzone.
// Organization.CreatedAt 0 means DefaultKey.Now; KeyQuota 0 means no
// quota (the proposer applies DefaultKeyQuota).
type CreateOrganizationV1 struct {
	Organization Organization `json:"organization"`
	DefaultKey   CreateKeyV1  `json:"default_key"`
}

// UpdateOrganizationV1 is the payload of CmdUpdateOrganization. Nil
// fields are left alone.
type UpdateOrganizationV1 struct {
	ID        string   `json:"id"`
	KeyQuota  *int     `json:"key_quota,omitempty"`
	RateLimit *float64 `json:"rate_limit,omitempty"`
	RateBurst *int     `json:"rate_burst,omitempty"`
	Now       int64    `json:"now"`
}

// CreateTokenV1 is the payload of CmdCreateToken. The proposer chooses
// the id, the secret (only its hash is here) and the times. Apply
// refuses a token of an unknown organization (ErrOrganizationNotFound)
// and an id already taken by another token (ErrInvalidCommand); a repeat
// of the same token returns the stored one.
type CreateTokenV1 struct {
	Token Token `json:"token"`
}

// RevokeTokenV1 is the payload of CmdRevokeToken. Revoking a revoked
// token changes nothing and succeeds; a token of another organization is
// ErrTokenNotFound.
type RevokeTokenV1 struct {
	Organization string `json:"organization"`
	TokenID      string `json:"token_id"`
	Now          int64  `json:"now"`
}

// CheckEntry reports whether Apply can decode the bytes of a log entry
// (see CheckCommand): for bytes from the network.
func CheckEntry(b []byte) error {
	if _, _, err := decodeEntry(b); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidCommand, err)
	}
	return nil
}

// decodeEntry decodes a log entry's command and the change it makes, as
// DecodeCommand and decodePayload do, but reads the envelope of the form
// Encode writes without encoding/json, which would scan the payload twice
// before decodePayload decodes it.
func decodeEntry(b []byte) (Command, applyFunc, error) {
	if cmd, ok := decodeCommandFast(b); ok {
		if apply, err := decodePayload(cmd); err == nil {
			return cmd, apply, nil
		}
		// The cut payload is no JSON value: encoding/json judges the
		// entry as a whole, as it always did.
	}
	cmd, err := DecodeCommand(b)
	if err != nil {
		return Command{}, nil, err
	}
	apply, err := decodePayload(cmd)
	return cmd, apply, err
}

// decodeCommandFast cuts an entry of a known command type written as
// {"type":T,"version":V,"payload":P}, with T and V as encoding/json writes
// numbers, into its parts without reading P. Known types decode P with
// encoding/json, which refuses anything but one JSON value: once P decodes,
// the entry is valid JSON with these three keys only, and encoding/json
// would have read the same command from it. Unknown types (decodePayload
// does not read an ignorable one's payload) and any other form are left to
// encoding/json.
func decodeCommandFast(b []byte) (Command, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"type":`))
	if !ok {
		return Command{}, false
	}
	typ, rest, ok := cutUint16(rest)
	if !ok || decoderFor(CommandType(typ)) == nil {
		return Command{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"version":`)); !ok {
		return Command{}, false
	}
	version, rest, ok := cutUint16(rest)
	if !ok {
		return Command{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"payload":`)); !ok {
		return Command{}, false
	}
	payload, ok := bytes.CutSuffix(rest, []byte("}"))
	// An object with nothing around it, as Encode writes: encoding/json
	// would drop spaces around P (and "null" means no payload to
	// decodePayload). Below maxCutPayload bytes, P can't nest as deep as
	// encoding/json's limit, which the envelope's one more level could
	// cross where P alone does not.
	if !ok || len(payload) < 2 || len(payload) >= maxCutPayload || payload[0] != '{' || payload[len(payload)-1] != '}' {
		return Command{}, false
	}
	return Command{Type: CommandType(typ), Version: version, Payload: payload}, true
}

// maxCutPayload bounds the payloads decodeCommandFast cuts: encoding/json
// refuses input nested deeper than 10,000 levels, and a shorter payload
// can't be.
const maxCutPayload = 9_999

// cutUint16 reads a decimal number as encoding/json writes one (no sign,
// no leading zero) that fits in 16 bits, and returns it and what follows.
func cutUint16(b []byte) (uint16, []byte, bool) {
	n, i := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i == 5 || (i == 1 && b[0] == '0') {
			return 0, nil, false
		}
		n = n*10 + int(b[i]-'0')
	}
	if i == 0 || n > math.MaxUint16 {
		return 0, nil, false
	}
	return uint16(n), b[i:], true
}
