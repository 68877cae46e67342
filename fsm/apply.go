package fsm

import (
	"fmt"
	"strings"
	"unique"
)

// Operation names carried by TransitionError.Op.
const (
	OpEnable           = "enable"
	OpDisable          = "disable"
	OpProtect          = "protect"
	OpUnprotect        = "unprotect"
	OpRotate           = "rotate"
	OpScheduleDeletion = "schedule-deletion"
	OpCancelDeletion   = "cancel-deletion"
	OpPurge            = "purge"
)

// Idempotency operations, the op argument of IdempotencyScope.
const (
	idemCreate = "create"
	idemRotate = "rotate/" // + key id
)

// The apply functions below run under the FSM's write lock. Each either
// refuses (state untouched, Result{Err}) or stores a changed copy of the
// key through commit. They read only the payload, the state and index.

func notFound(id string) error { return fmt.Errorf("key %s: %w", id, ErrKeyNotFound) }

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrInvalidCommand)...)
}

func transition(k *Key, op string) error {
	return &TransitionError{KeyID: k.ID, From: k.State, Op: op}
}

// find returns the live key id of organization org. A key of another
// organization is reported exactly like a missing one.
func (s *state) find(id, org string) (*Key, error) {
	k, ok := s.keys[id]
	if !ok || k.Organization != org {
		return nil, notFound(id)
	}
	return k, nil
}

// checkRevision enforces If-Match.
func checkRevision(k *Key, ref KeyRefV1) error {
	if ref.IfRevision != 0 && ref.IfRevision != k.Revision {
		return fmt.Errorf("key %s is at revision %d, not %d: %w",
			k.ID, k.Revision, ref.IfRevision, ErrRevisionMismatch)
	}
	return nil
}

// lookup is find followed by checkPrimary and checkRevision: lifecycle
// changes are made on primaries only.
func (s *state) lookup(ref KeyRefV1) (*Key, error) {
	k, err := s.find(ref.KeyID, ref.Organization)
	if err != nil {
		return nil, err
	}
	if err := s.checkPrimary(k); err != nil {
		return nil, err
	}
	if err := checkRevision(k, ref); err != nil {
		return nil, err
	}
	return k, nil
}

// commit stores c, a changed copy of a key, as the key's new value, and
// logs it to the change log when it is a primary with replicas.
func (s *state) commit(c *Key, index uint64, now int64) Result {
	c.Revision = index
	c.UpdatedAt = now
	s.putKey(c)
	if s.multiZonePrimary(c) {
		s.logChange(c)
	}
	return Result{Key: c}
}

// liveRecord returns the idempotency record under scope unless it has
// expired at now (expired records linger until CmdExpireIdempotency).
func (s *state) liveRecord(scope string, now int64) (IdempotencyRecord, bool) {
	r, ok := s.idem[scope]
	if !ok || r.ExpiresAt <= now {
		return IdempotencyRecord{}, false
	}
	return r, true
}

// nonNil makes empty lists encode as [] rather than null, on every node
// and after any number of snapshot round trips.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// intern returns the canonical copy of a low-cardinality string, so that
// many keys share one copy of their organization, usage, zone, REK id or
// tag instead of one per decoded command. Values are unchanged.
func intern(s string) string { return unique.Make(s).Value() }

// internKey interns k's low-cardinality strings in place. k must not be
// shared yet (a key being created or restored).
func internKey(k *Key) {
	k.Organization = intern(k.Organization)
	k.Usage = intern(k.Usage)
	k.Algorithm = intern(k.Algorithm)
	k.Origin = intern(k.Origin)
	k.PrimaryZone = intern(k.PrimaryZone)
	internAll(k.Tags)
	internAll(k.ReplicaZones)
	for i := range k.Versions {
		k.Versions[i].RekID = intern(k.Versions[i].RekID)
	}
}

func internAll(ss []string) {
	for i, s := range ss {
		ss[i] = intern(s)
	}
}

// validatePolicy checks a rotation policy given at now and returns it with
// NextRotationAt zeroed when rotation is off.
func validatePolicy(p RotationPolicy, now int64) (RotationPolicy, error) {
	switch {
	case p.Period < 0:
		return p, invalid("negative rotation period %d", p.Period)
	case p.Period == 0:
		p.NextRotationAt = 0
	case p.NextRotationAt <= now:
		return p, invalid("next rotation at %d is not after now %d", p.NextRotationAt, now)
	}
	return p, nil
}

func validateIdempotency(i Idempotency, now int64) error {
	if i.Token != "" && i.ExpiresAt <= now {
		return invalid("idempotency record expires at %d, not after now %d", i.ExpiresAt, now)
	}
	return nil
}

// validateNewVersion checks a version about to be added.
func validateNewVersion(v Version) error {
	switch {
	case len(v.Wrapped) == 0:
		return invalid("version %d has no wrapped material", v.Number)
	case v.RekID == "":
		return invalid("version %d has no REK id", v.Number)
	case v.State != "" && v.State != VersionStateEnabled:
		return invalid("new version %d in state %s", v.Number, v.State)
	}
	return nil
}

func validateCreate(p *CreateKeyV1) error {
	switch {
	case p.ID == "" || strings.Contains(p.ID, "/") || isTenancySlot(p.ID):
		return invalid("key id %q", p.ID)
	case p.Organization == "" || strings.Contains(p.Organization, "/"):
		return invalid("organization %q", p.Organization)
	case p.Usage == "":
		return invalid("empty usage")
	case p.Algorithm == "":
		return invalid("empty algorithm")
	}
	switch p.Origin {
	case OriginKeyzone:
		if p.FirstVersion.Number != 1 {
			return invalid("first version numbered %d, not 1", p.FirstVersion.Number)
		}
		if err := validateNewVersion(p.FirstVersion); err != nil {
			return err
		}
	case OriginExternal:
		if p.FirstVersion.Number != 0 || len(p.FirstVersion.Wrapped) != 0 {
			return invalid("origin external with a first version")
		}
	default:
		return invalid("origin %q", p.Origin)
	}
	return validateIdempotency(p.Idempotency, p.Now)
}

// applyCreateKey creates a key: enabled with version 1 for origin keyzone,
// pending_import without versions for origin external.
func applyCreateKey(s *state, index uint64, p *CreateKeyV1) Result {
	return applyCreate(s, index, p, false)
}

// applyCreate is applyCreateKey, and makes the default key of a new
// organization when dflt is set (applyCreateOrganization): such a key is
// marked Default and does not count against the organization's quota.
func applyCreate(s *state, index uint64, p *CreateKeyV1, dflt bool) Result {
	if err := validateCreate(p); err != nil {
		return Result{Err: fmt.Errorf("create key: %w", err)}
	}
	policy, err := validatePolicy(p.RotationPolicy, p.Now)
	if err != nil {
		return Result{Err: fmt.Errorf("create key %s: %w", p.ID, err)}
	}
	if len(p.ReplicaZones) > 0 && p.PrimaryZone != s.zone {
		return Result{Err: fmt.Errorf("create key %s: primary zone %q is not this zone %q: %w", p.ID, p.PrimaryZone, s.zone, ErrInvalidCommand)}
	}
	if err := s.validateReplicaZones(p.ReplicaZones); err != nil {
		return Result{Err: fmt.Errorf("create key %s: %w", p.ID, err)}
	}
	var scope string
	if p.Idempotency.Token != "" {
		scope = IdempotencyScope(p.Organization, idemCreate, p.Idempotency.Token)
		if r, ok := s.liveRecord(scope, p.Now); ok {
			// A retry: answer with the key the first attempt created,
			// as it is now.
			k, err := s.find(r.KeyID, p.Organization)
			if err != nil {
				return Result{Err: err}
			}
			return Result{Key: k}
		}
	}
	if _, ok := s.keys[p.ID]; ok {
		return Result{Err: fmt.Errorf("key %s: %w", p.ID, ErrKeyExists)}
	}
	if _, ok := s.tombstones[p.ID]; ok {
		return Result{Err: fmt.Errorf("key %s was purged: %w", p.ID, ErrKeyExists)}
	}

	k := &Key{
		ID:             p.ID,
		Organization:   p.Organization,
		Name:           p.Name,
		Description:    p.Description,
		Tags:           nonNil(p.Tags),
		Usage:          p.Usage,
		Algorithm:      p.Algorithm,
		Origin:         p.Origin,
		State:          KeyStatePendingImport,
		Protected:      p.Protected,
		RotationPolicy: policy,
		Versions:       []Version{},
		PrimaryZone:    p.PrimaryZone,
		ReplicaZones:   nonNil(p.ReplicaZones),
		CreatedAt:      p.Now,
		Default:        dflt,
	}
	if err := s.checkQuota(k); err != nil {
		return Result{Err: err}
	}
	if p.Origin == OriginKeyzone {
		v := p.FirstVersion
		v.State = VersionStateEnabled
		k.Versions = []Version{v}
		k.CurrentVersion = 1
		k.State = KeyStateEnabled
	}
	internKey(k)
	s.indexKey(k)
	res := s.commit(k, index, p.Now)
	if scope != "" {
		s.idem[scope] = IdempotencyRecord{
			Scope: scope, KeyID: k.ID, Version: k.CurrentVersion, ExpiresAt: p.Idempotency.ExpiresAt,
		}
	}
	return res
}

// applyUpdateKey changes metadata in any live state. Nil fields are left
// alone; an update with none is a no-op that keeps the revision.
func applyUpdateKey(s *state, index uint64, p *UpdateKeyV1) Result {
	k, err := s.lookup(p.KeyRefV1)
	if err != nil {
		return Result{Err: err}
	}
	if p.Name == nil && p.Description == nil && p.Tags == nil && p.RotationPolicy == nil {
		return Result{Key: k}
	}
	if k.Default && p.RotationPolicy != nil && p.RotationPolicy.Period == 0 {
		return Result{Err: defaultKeyRefused(k, "turn off the rotation of")}
	}
	c := k.clone()
	if p.RotationPolicy != nil && p.RotationPolicy.Period != k.RotationPolicy.Period {
		// Re-sending the period a key already has keeps its schedule: a
		// client that PATCHes the whole object must not postpone the
		// next rotation forever.
		policy, err := validatePolicy(*p.RotationPolicy, p.Now)
		if err != nil {
			return Result{Err: fmt.Errorf("update key %s: %w", k.ID, err)}
		}
		c.RotationPolicy = policy
	}
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.Description != nil {
		c.Description = *p.Description
	}
	if p.Tags != nil {
		c.Tags = nonNil(*p.Tags) // the decoded payload is ours to keep
		internAll(c.Tags)
	}
	return s.commit(c, index, p.Now)
}

// applyEnableKey: disabled -> enabled; enabled is a no-op.
func applyEnableKey(s *state, index uint64, p *KeyRefV1) Result {
	k, err := s.lookup(*p)
	if err != nil {
		return Result{Err: err}
	}
	switch k.State {
	case KeyStateEnabled:
		return Result{Key: k}
	case KeyStateDisabled:
		c := k.clone()
		c.State = KeyStateEnabled
		return s.commit(c, index, p.Now)
	}
	return Result{Err: transition(k, OpEnable)}
}

// applyDisableKey: enabled -> disabled; disabled is a no-op.
func applyDisableKey(s *state, index uint64, p *KeyRefV1) Result {
	k, err := s.lookup(*p)
	if err != nil {
		return Result{Err: err}
	}
	if k.Default {
		return Result{Err: defaultKeyRefused(k, OpDisable)}
	}
	switch k.State {
	case KeyStateDisabled:
		return Result{Key: k}
	case KeyStateEnabled:
		c := k.clone()
		c.State = KeyStateDisabled
		return s.commit(c, index, p.Now)
	}
	return Result{Err: transition(k, OpDisable)}
}

// setProtected sets the protected flag in any state but pending_deletion
// (a key pending deletion is neither protected nor unprotected: cancel first).
func setProtected(s *state, index uint64, p *KeyRefV1, protected bool, op string) Result {
	k, err := s.lookup(*p)
	if err != nil {
		return Result{Err: err}
	}
	if k.State == KeyStatePendingDeletion {
		return Result{Err: transition(k, op)}
	}
	if k.Default && !protected {
		return Result{Err: defaultKeyRefused(k, op)}
	}
	if k.Protected == protected {
		return Result{Key: k}
	}
	c := k.clone()
	c.Protected = protected
	return s.commit(c, index, p.Now)
}

func applyProtectKey(s *state, index uint64, p *KeyRefV1) Result {
	return setProtected(s, index, p, true, OpProtect)
}

func applyUnprotectKey(s *state, index uint64, p *KeyRefV1) Result {
	return setProtected(s, index, p, false, OpUnprotect)
}

// applyRotateKey appends a version and makes it current. Only enabled keys
// rotate: like AWS KMS, rotation needs an enabled key, and the scheduler
// skips disabled keys (DueRotations), so a disabled key neither gains
// versions nor falls behind a schedule it will catch up on when enabled.
//
// A scheduled rotation (from the leader's ticker) moves NextRotationAt to
// the payload's value, which must be later than the current one. It is
// refused when the key is no longer due (its policy was turned off or
// moved, or a concurrent scheduled rotation won), so a stale tick never
// rotates twice. The new NextRotationAt may be <= Now (a period shorter
// than the proposer's delay): the key is then simply due again. Manual
// rotations leave the schedule alone.
func applyRotateKey(s *state, index uint64, p *RotateKeyV1) Result {
	k, err := s.find(p.KeyID, p.Organization)
	if err != nil {
		return Result{Err: err}
	}
	var scope string
	if p.Idempotency.Token != "" {
		// Checked before If-Match and state: a retry of a rotation that
		// succeeded carries the revision it saw before that rotation.
		scope = IdempotencyScope(p.Organization, idemRotate+p.KeyID, p.Idempotency.Token)
		if _, ok := s.liveRecord(scope, p.Now); ok {
			return Result{Key: k}
		}
	}
	if err := s.checkPrimary(k); err != nil {
		return Result{Err: err}
	}
	if err := checkRevision(k, p.KeyRefV1); err != nil {
		return Result{Err: err}
	}
	if k.State != KeyStateEnabled {
		return Result{Err: transition(k, OpRotate)}
	}
	if k.PendingVersion != 0 {
		return Result{Err: fmt.Errorf("rotate key %s: version %d still waits for zones %v: %w",
			k.ID, k.PendingVersion, k.PendingZones, ErrRotationPending)}
	}
	v := p.NewVersion
	if want := uint32(len(k.Versions)) + 1; v.Number != want {
		return Result{Err: fmt.Errorf("rotate key %s: new version %d, want %d: %w",
			k.ID, v.Number, want, ErrVersionConflict)}
	}
	if err := validateNewVersion(v); err != nil {
		return Result{Err: fmt.Errorf("rotate key %s: %w", k.ID, err)}
	}
	if err := validateIdempotency(p.Idempotency, p.Now); err != nil {
		return Result{Err: fmt.Errorf("rotate key %s: %w", k.ID, err)}
	}
	if p.Scheduled {
		pol := k.RotationPolicy
		if pol.Period == 0 || pol.NextRotationAt > p.Now {
			return Result{Err: fmt.Errorf("rotate key %s: scheduled rotation not due: %w",
				k.ID, ErrInvalidCommand)}
		}
		if p.NextRotationAt <= pol.NextRotationAt {
			return Result{Err: fmt.Errorf("rotate key %s: next rotation at %d does not move the schedule past %d: %w",
				k.ID, p.NextRotationAt, pol.NextRotationAt, ErrInvalidCommand)}
		}
	}

	c := k.clone()
	v.State = VersionStateEnabled
	v.RekID = intern(v.RekID)
	versions := make([]Version, len(c.Versions)+1)
	copy(versions, c.Versions)
	versions[len(c.Versions)] = v
	c.Versions = versions
	if s.multiZonePrimary(c) {
		// Two-phase: the version is replicated first and encrypts only
		// once every replica zone holds it (see applyReplicaAck).
		s.startPending(c)
	} else {
		c.CurrentVersion = v.Number
	}
	if p.Scheduled {
		c.RotationPolicy.NextRotationAt = p.NextRotationAt
	}
	res := s.commit(c, index, p.Now)
	if scope != "" {
		s.idem[scope] = IdempotencyRecord{
			Scope: scope, KeyID: c.ID, Version: v.Number, ExpiresAt: p.Idempotency.ExpiresAt,
		}
	}
	return res
}

// applyScheduleDeletion: enabled, disabled or pending_import ->
// pending_deletion, unless protected. pending_import keys may be deleted
// too (as in AWS KMS): they hold no material.
func applyScheduleDeletion(s *state, index uint64, p *ScheduleDeletionV1) Result {
	k, err := s.lookup(p.KeyRefV1)
	if err != nil {
		return Result{Err: err}
	}
	if k.Default {
		return Result{Err: defaultKeyRefused(k, OpScheduleDeletion)}
	}
	switch k.State {
	case KeyStateEnabled, KeyStateDisabled, KeyStatePendingImport:
	default:
		return Result{Err: transition(k, OpScheduleDeletion)}
	}
	if k.Protected {
		return Result{Err: fmt.Errorf("key %s: %w", k.ID, ErrKeyProtected)}
	}
	if p.DeletionAt <= p.Now {
		return Result{Err: fmt.Errorf("schedule deletion of key %s: deletion at %d is not after now %d: %w",
			k.ID, p.DeletionAt, p.Now, ErrInvalidCommand)}
	}
	c := k.clone()
	c.State = KeyStatePendingDeletion
	c.DeletionAt = p.DeletionAt
	return s.commit(c, index, p.Now)
}

// applyCancelDeletion: pending_deletion -> disabled, or -> pending_import
// for a key that never received material, so that an enabled or disabled
// key always has a current version.
func applyCancelDeletion(s *state, index uint64, p *KeyRefV1) Result {
	k, err := s.lookup(*p)
	if err != nil {
		return Result{Err: err}
	}
	if k.State != KeyStatePendingDeletion {
		return Result{Err: transition(k, OpCancelDeletion)}
	}
	c := k.clone()
	c.State = KeyStateDisabled
	if len(c.Versions) == 0 {
		c.State = KeyStatePendingImport
	}
	c.DeletionAt = 0
	return s.commit(c, index, p.Now)
}

// applyPurgeKey removes a key pending deletion whose time has come and
// leaves a tombstone. Result.Key is the final copy: every version
// destroyed, wrapped material gone from the state for good.
func applyPurgeKey(s *state, index uint64, p *PurgeKeyV1) Result {
	k, ok := s.keys[p.KeyID]
	if !ok {
		return Result{Err: notFound(p.KeyID)}
	}
	if err := s.checkPrimary(k); err != nil {
		return Result{Err: err}
	}
	if k.State != KeyStatePendingDeletion || k.DeletionAt > p.Now {
		return Result{Err: transition(k, OpPurge)}
	}
	c := k.clone()
	for i := range c.Versions {
		c.Versions[i].State = VersionStateDestroyed
		c.Versions[i].Wrapped = nil
	}
	c.Revision = index
	c.UpdatedAt = p.Now

	s.removeKey(k)
	t := Tombstone{ID: k.ID, Organization: k.Organization, PurgedAt: p.Now}
	if s.multiZonePrimary(k) {
		t.PrimaryZone, t.PrimaryEpoch = k.PrimaryZone, k.PrimaryEpoch
	}
	s.tombstones[k.ID] = t
	if s.multiZonePrimary(k) {
		s.logTombstone(t)
	}
	return Result{Key: c}
}

// applyExpireIdempotency drops the records that expired at or before Now.
func applyExpireIdempotency(s *state, _ uint64, p *ExpireIdempotencyV1) Result {
	for scope, r := range s.idem {
		if r.ExpiresAt <= p.Now {
			delete(s.idem, scope)
		}
	}
	return Result{}
}
