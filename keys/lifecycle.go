package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
)

// outcomeUnknown reports an error after which a proposal may or may not
// have been committed (the leader was lost while committing). The
// proposer marks such errors with an OutcomeUnknown method.
func outcomeUnknown(err error) bool {
	var u interface{ OutcomeUnknown() bool }
	return errors.As(err, &u) && u.OutcomeUnknown()
}

// CreateKey creates a key with a first version of fresh material.
func (s *Service) CreateKey(ctx context.Context, p CreateParams) (*fsm.Key, error) {
	if err := validateName(p.Name); err != nil {
		return nil, err
	}
	if err := validateText("description", p.Description, maxDescriptionLen); err != nil {
		return nil, err
	}
	tags, err := normalizeTags(p.Tags)
	if err != nil {
		return nil, err
	}
	if p.Usage == "" {
		p.Usage = fsm.UsageSymmetricEncryption
	}
	if p.Usage != fsm.UsageSymmetricEncryption {
		return nil, invalid("usage %q is not supported (symmetric_encryption is)", truncate(p.Usage, 64))
	}
	if p.Algorithm == "" {
		p.Algorithm = fsm.AlgorithmAES256GCM
	}
	if p.Algorithm != fsm.AlgorithmAES256GCM {
		return nil, invalid("algorithm %q is not supported (aes_256_gcm is)", truncate(p.Algorithm, 64))
	}
	if p.Origin == "" {
		p.Origin = fsm.OriginKeyzone
	}
	if p.Origin != fsm.OriginKeyzone && p.Origin != fsm.OriginExternal {
		return nil, invalid("origin %q is not supported (keyzone or external)", truncate(p.Origin, 64))
	}
	replicas, err := s.normalizeReplicaZones(p.ReplicaZones)
	if err != nil {
		return nil, err
	}
	if err := s.validateRotationPeriod(p.RotationPeriod); err != nil {
		return nil, err
	}
	if err := validateIdempotencyKey(p.IdempotencyKey); err != nil {
		return nil, err
	}

	now := s.now()
	id, err := kzcrypto.NewKeyID(s.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("new key id: %w", err)
	}
	// A key of origin external starts pending import, without a version.
	var first fsm.Version
	if p.Origin == fsm.OriginKeyzone {
		if first, err = s.newVersion(id, 1, now); err != nil {
			return nil, err
		}
	}
	payload := fsm.CreateKeyV1{
		ID:             id.String(),
		Organization:   p.Organization,
		Name:           p.Name,
		Description:    p.Description,
		Tags:           tags,
		Usage:          p.Usage,
		Algorithm:      p.Algorithm,
		Origin:         p.Origin,
		Protected:      p.Protected,
		RotationPolicy: rotationPolicy(p.RotationPeriod, now),
		PrimaryZone:    s.cfg.Zone,
		ReplicaZones:   replicas,
		FirstVersion:   first,
		Now:            now,
		Idempotency:    s.idempotency(p.IdempotencyKey, now),
	}
	key, err := s.propose(ctx, fsm.CmdCreateKey, payload)
	if outcomeUnknown(err) {
		// The outcome is unknown; the key id is ours alone, so its
		// presence after a consistent read tells.
		if k, ok := s.resolveUnknown(ctx, payload.ID, func(k *fsm.Key) bool { return true }); ok {
			return k, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	return key, nil
}

func (s *Service) idempotency(token string, now int64) fsm.Idempotency {
	if token == "" {
		return fsm.Idempotency{}
	}
	return fsm.Idempotency{Token: token, ExpiresAt: now + int64(s.cfg.IdempotencyTTL)}
}

// GetKey returns a key of the organization. Unless stale, it first
// catches up with every write acknowledged in the zone.
func (s *Service) GetKey(ctx context.Context, org, id string, stale bool) (*fsm.Key, error) {
	if _, err := parseKeyID(id); err != nil {
		return nil, err
	}
	if !stale {
		if err := s.proposer.ConsistentRead(ctx); err != nil {
			return nil, err
		}
	}
	k, ok := s.fsm.Key(id)
	if !ok || k.Organization != org {
		return nil, fmt.Errorf("key %s: %w", id, fsm.ErrKeyNotFound)
	}
	return k, nil
}

// ListKeys returns one page of the organization's keys in id order.
func (s *Service) ListKeys(ctx context.Context, p ListParams) (ListResult, error) {
	if p.PageSize < 0 || p.PageSize > maxPageSize {
		return ListResult{}, invalid("page size %d is outside 1..%d", p.PageSize, maxPageSize)
	}
	if p.PageSize == 0 {
		p.PageSize = defaultPageSize
	}
	if err := validateState(p.State); err != nil {
		return ListResult{}, err
	}
	after, err := decodePageToken(p.PageToken)
	if err != nil {
		return ListResult{}, err
	}
	if !p.Stale {
		if err := s.proposer.ConsistentRead(ctx); err != nil {
			return ListResult{}, err
		}
	}
	page, more := s.fsm.ListKeys(fsm.ListQuery{
		Organization: p.Organization, Name: p.Name, Tag: p.Tag, State: p.State,
		AfterID: after, Limit: p.PageSize,
	})
	res := ListResult{Keys: page}
	if more && len(page) > 0 {
		res.NextPageToken = encodePageToken(page[len(page)-1].ID)
	}
	return res, nil
}

const pageTokenPrefix = "after:"

func encodePageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + lastID))
}

func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !bytes.HasPrefix(b, []byte(pageTokenPrefix)) {
		return "", invalid("page token is not one this server issued")
	}
	id := string(b[len(pageTokenPrefix):])
	if _, err := kzcrypto.ParseKeyID(id); err != nil {
		return "", invalid("page token is not one this server issued")
	}
	return id, nil
}

// UpdateKey changes a key's name, description, tags or rotation period.
func (s *Service) UpdateKey(ctx context.Context, p UpdateParams) (*fsm.Key, error) {
	if _, err := parseKeyID(p.KeyID); err != nil {
		return nil, err
	}
	now := s.now()
	payload := fsm.UpdateKeyV1{KeyRefV1: s.ref(p.KeyRef, now), Name: p.Name, Description: p.Description}
	if p.Name != nil {
		if err := validateName(*p.Name); err != nil {
			return nil, err
		}
	}
	if p.Description != nil {
		if err := validateText("description", *p.Description, maxDescriptionLen); err != nil {
			return nil, err
		}
	}
	if p.Tags != nil {
		tags, err := normalizeTags(*p.Tags)
		if err != nil {
			return nil, err
		}
		payload.Tags = &tags
	}
	if p.RotationPeriod != nil {
		if err := s.validateRotationPeriod(*p.RotationPeriod); err != nil {
			return nil, err
		}
		pol := rotationPolicy(*p.RotationPeriod, now)
		payload.RotationPolicy = &pol
	}
	if p.Name == nil && p.Description == nil && p.Tags == nil && p.RotationPeriod == nil {
		return nil, invalid("nothing to update: give name, description, tags or rotation_policy")
	}
	return s.lifecycle(ctx, "update", fsm.CmdUpdateKey, payload)
}

func (s *Service) ref(r KeyRef, now int64) fsm.KeyRefV1 {
	return fsm.KeyRefV1{KeyID: r.KeyID, Organization: r.Organization, IfRevision: r.IfRevision, Now: now}
}

func (s *Service) simple(ctx context.Context, op string, t fsm.CommandType, r KeyRef) (*fsm.Key, error) {
	if _, err := parseKeyID(r.KeyID); err != nil {
		return nil, err
	}
	return s.lifecycle(ctx, op, t, s.ref(r, s.now()))
}

func (s *Service) lifecycle(ctx context.Context, op string, t fsm.CommandType, payload any) (*fsm.Key, error) {
	k, err := s.propose(ctx, t, payload)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", op, err)
	}
	return k, nil
}

// EnableKey enables a disabled key.
func (s *Service) EnableKey(ctx context.Context, r KeyRef) (*fsm.Key, error) {
	return s.simple(ctx, "enable", fsm.CmdEnableKey, r)
}

// DisableKey disables an enabled key: it refuses crypto until enabled.
func (s *Service) DisableKey(ctx context.Context, r KeyRef) (*fsm.Key, error) {
	return s.simple(ctx, "disable", fsm.CmdDisableKey, r)
}

// ProtectKey makes a key refuse deletion.
func (s *Service) ProtectKey(ctx context.Context, r KeyRef) (*fsm.Key, error) {
	return s.simple(ctx, "protect", fsm.CmdProtectKey, r)
}

// UnprotectKey lets a key be deleted again.
func (s *Service) UnprotectKey(ctx context.Context, r KeyRef) (*fsm.Key, error) {
	return s.simple(ctx, "unprotect", fsm.CmdUnprotectKey, r)
}

// CancelDeletion returns a key pending deletion to disabled.
func (s *Service) CancelDeletion(ctx context.Context, r KeyRef) (*fsm.Key, error) {
	return s.simple(ctx, "cancel deletion of", fsm.CmdCancelDeletion, r)
}

// ScheduleDeletion schedules the purge of a key after a pending window.
func (s *Service) ScheduleDeletion(ctx context.Context, p ScheduleDeletionParams) (*fsm.Key, error) {
	if _, err := parseKeyID(p.KeyID); err != nil {
		return nil, err
	}
	w := p.PendingWindow
	if w == 0 {
		w = s.cfg.DefaultDeletionWindow
	}
	if w < s.cfg.MinDeletionWindow || w > s.cfg.MaxDeletionWindow {
		return nil, invalid("pending window %s is outside the allowed range %s..%s", w, s.cfg.MinDeletionWindow, s.cfg.MaxDeletionWindow)
	}
	now := s.now()
	return s.lifecycle(ctx, "schedule deletion of", fsm.CmdScheduleDeletion,
		fsm.ScheduleDeletionV1{KeyRefV1: s.ref(p.KeyRef, now), DeletionAt: now + int64(w)})
}

// maxRotateAttempts bounds retries when a concurrent rotation took the
// version number this one drew material for.
const maxRotateAttempts = 5

// RotateKey adds a version of fresh material that becomes the encrypting
// one; older versions keep decrypting. A manual rotation leaves the
// automatic schedule alone.
func (s *Service) RotateKey(ctx context.Context, p RotateParams) (*fsm.Key, error) {
	kid, err := parseKeyID(p.KeyID)
	if err != nil {
		return nil, err
	}
	if err := validateIdempotencyKey(p.IdempotencyKey); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		k, err := s.rotateOnce(ctx, kid, p.KeyRef, p.IdempotencyKey, false, 0)
		if errors.Is(err, fsm.ErrVersionConflict) && attempt+1 < maxRotateAttempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rotate key: %w", err)
		}
		return k, nil
	}
}

// rotateOnce proposes version len+1 as the local state knows it. A
// concurrent rotation makes Apply refuse it with ErrVersionConflict.
func (s *Service) rotateOnce(ctx context.Context, kid kzcrypto.KeyID, r KeyRef, token string, scheduled bool, next int64) (*fsm.Key, error) {
	if err := s.proposer.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	cur, ok := s.fsm.Key(r.KeyID)
	if !ok || cur.Organization != r.Organization {
		return nil, fmt.Errorf("key %s: %w", r.KeyID, fsm.ErrKeyNotFound)
	}
	now := s.now()
	n := uint32(len(cur.Versions)) + 1
	v, err := s.newVersion(kid, n, now)
	if err != nil {
		return nil, err
	}
	payload := fsm.RotateKeyV1{
		KeyRefV1:       s.ref(r, now),
		NewVersion:     v,
		Scheduled:      scheduled,
		NextRotationAt: next,
		Idempotency:    s.idempotency(token, now),
	}
	k, err := s.propose(ctx, fsm.CmdRotateKey, payload)
	if outcomeUnknown(err) {
		if k, ok := s.resolveUnknown(ctx, r.KeyID, func(k *fsm.Key) bool {
			got, ok := k.Version(n)
			return ok && bytes.Equal(got.Wrapped, v.Wrapped)
		}); ok {
			return k, nil
		}
	}
	return k, err
}

// resolveUnknown settles a proposal whose outcome was lost with the
// leader: after a consistent read, applied(key) tells whether it took
// effect.
func (s *Service) resolveUnknown(ctx context.Context, id string, applied func(*fsm.Key) bool) (*fsm.Key, bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.proposer.ConsistentRead(ctx); err != nil {
		return nil, false
	}
	k, ok := s.fsm.Key(id)
	if ok && applied(k) {
		return k, true
	}
	return nil, false
}

// maxReplicaZones bounds a key's replica set (the FSM checks it too).
const maxReplicaZones = 16

// normalizeReplicaZones checks replica zone names and returns them
// sorted, without duplicates.
func (s *Service) normalizeReplicaZones(zones []string) ([]string, error) {
	out := make([]string, 0, len(zones))
	for _, z := range zones {
		if err := validateZoneName(z); err != nil {
			return nil, err
		}
		if z == s.cfg.Zone {
			return nil, invalid("replica zone %s is this key's primary zone", z)
		}
		if !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	if len(out) > maxReplicaZones {
		return nil, invalid("%d replica zones given, at most %d allowed", len(out), maxReplicaZones)
	}
	if s.cfg.KnownZones != nil && len(out) > 0 {
		known := s.cfg.KnownZones()
		for _, z := range out {
			if !slices.Contains(known, z) {
				return nil, invalid("zone %s is not known to this deployment (known: %s)", z, strings.Join(known, ", "))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// AddReplica adds zone to a primary key's replica zones: the zone
// receives the whole key through the change log and serves crypto with it.
func (s *Service) AddReplica(ctx context.Context, r KeyRef, zone string) (*fsm.Key, error) {
	return s.changeReplicas(ctx, r, "add replica of", func(zones []string) []string {
		return append(zones, zone)
	})
}

// RemoveReplica drops zone from a primary key's replica zones: the zone
// deletes its copy when it applies the change.
func (s *Service) RemoveReplica(ctx context.Context, r KeyRef, zone string) (*fsm.Key, error) {
	if err := validateZoneName(zone); err != nil {
		return nil, err
	}
	return s.changeReplicas(ctx, r, "remove replica of", func(zones []string) []string {
		return slices.DeleteFunc(zones, func(z string) bool { return z == zone })
	})
}

// changeReplicas reads the key's replica set, changes it and proposes the
// new set conditioned on the revision it read, retrying when a concurrent
// change got there first (unless the caller gave If-Match).
func (s *Service) changeReplicas(ctx context.Context, r KeyRef, op string, change func([]string) []string) (*fsm.Key, error) {
	if _, err := parseKeyID(r.KeyID); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		k, err := s.GetKey(ctx, r.Organization, r.KeyID, false)
		if err != nil {
			return nil, err
		}
		if k.IsReplicaIn(s.cfg.Zone) {
			// The primary zone makes the change (the API forwards it
			// there); this zone's name in the set is no error to report.
			return nil, &fsm.NotPrimaryError{KeyID: k.ID, PrimaryZone: k.PrimaryZone}
		}
		zones, err := s.normalizeReplicaZones(change(slices.Clone(k.ReplicaZones)))
		if err != nil {
			return nil, err
		}
		ref := r
		if ref.IfRevision == 0 {
			ref.IfRevision = k.Revision
		}
		got, err := s.lifecycle(ctx, op, fsm.CmdSetReplicaZones,
			fsm.SetReplicaZonesV1{KeyRefV1: s.ref(ref, s.now()), ReplicaZones: zones})
		if errors.Is(err, fsm.ErrRevisionMismatch) && r.IfRevision == 0 && attempt < maxRotateAttempts {
			continue
		}
		return got, err
	}
}

// UpdatePrimaryParams moves a multi-zone key's primary to Zone, one of
// its replica zones.
type UpdatePrimaryParams struct {
	KeyRef
	Zone string
	// Force hands the key over even when Zone has not applied the key's
	// last change (that change is lost), and, sent to a node of Zone while
	// the primary zone is unreachable, lets Zone take the key over alone.
	Force bool
}

// UpdatePrimary moves the key's primary zone. Made in the primary zone,
// it hands the key over: the old primary becomes a replica. Made in the
// target zone with Force, it takes the key over without the old primary.
// In any other zone it is refused with *fsm.NotPrimaryError (the API
// forwards it to the primary zone).
func (s *Service) UpdatePrimary(ctx context.Context, p UpdatePrimaryParams) (*fsm.Key, error) {
	if _, err := parseKeyID(p.KeyID); err != nil {
		return nil, err
	}
	if err := validateZoneName(p.Zone); err != nil {
		return nil, err
	}
	if k, ok := s.fsm.Key(p.KeyID); ok && p.Force && p.Zone == s.cfg.Zone && k.IsReplicaIn(s.cfg.Zone) &&
		(s.cfg.LiveZones == nil || slices.Contains(s.cfg.LiveZones(), k.PrimaryZone)) {
		// A takeover is for a primary zone that is gone. While it is in
		// the pool, the request goes to it (the API forwards on this
		// error) and it hands the key over itself, so no change it made
		// is lost behind its back.
		return nil, &fsm.NotPrimaryError{KeyID: k.ID, PrimaryZone: k.PrimaryZone}
	}
	return s.lifecycle(ctx, "update primary of", fsm.CmdUpdatePrimary,
		fsm.UpdatePrimaryV1{KeyRefV1: s.ref(p.KeyRef, s.now()), NewPrimary: p.Zone, Force: p.Force})
}
