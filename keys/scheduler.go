package keys

import (
	"context"
	"errors"
	"slices"
	"time"

	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
)

// LeaderTask runs the time-driven transitions on the zone's leader: it
// rotates keys whose next_rotation_at has passed, purges keys whose
// deletion time has passed, and expires idempotency records. Each is a
// command carrying the leader's "now", so Apply stays deterministic, and
// each is checked again by Apply, so a task racing a user's change (a
// cancel, a manual rotation) is refused rather than applied twice.
func (s *Service) LeaderTask(ctx context.Context) {
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for {
		s.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) tick(ctx context.Context) {
	now := s.now()
	for _, k := range s.fsm.DueRotations(now) {
		if ctx.Err() != nil {
			return
		}
		s.scheduledRotation(ctx, k, now)
	}
	for _, k := range s.fsm.DuePurges(now) {
		if ctx.Err() != nil {
			return
		}
		if _, err := s.propose(ctx, fsm.CmdPurgeKey, fsm.PurgeKeyV1{KeyID: k.ID, Now: now}); err != nil {
			s.logger.Warn("purge failed", "key_id", k.ID, "error", err)
			continue
		}
		s.logger.Info("key purged", "key_id", k.ID)
	}
	s.spreadDefaultKeys(ctx, now)
	if s.fsm.HasExpiredIdempotency(now) {
		if _, err := s.propose(ctx, fsm.CmdExpireIdempotency, fsm.ExpireIdempotencyV1{Now: now}); err != nil {
			s.logger.Warn("expire idempotency records failed", "error", err)
		}
	}
}

// scheduledRotation rotates a due key and moves its schedule one period
// on, or to a period from now if the zone was down past several periods.
func (s *Service) scheduledRotation(ctx context.Context, k *fsm.Key, now int64) {
	kid, err := kzcrypto.ParseKeyID(k.ID)
	if err != nil {
		s.logger.Error("key with invalid id in state", "key_id", k.ID)
		return
	}
	next := k.RotationPolicy.NextRotationAt + k.RotationPolicy.Period
	if next <= now {
		next = now + k.RotationPolicy.Period
	}
	ref := KeyRef{Organization: k.Organization, KeyID: k.ID, IfRevision: k.Revision}
	rotated, err := s.rotateOnce(ctx, kid, ref, "", true, next)
	switch {
	case errors.Is(err, fsm.ErrRevisionMismatch), errors.Is(err, fsm.ErrVersionConflict),
		errors.Is(err, fsm.ErrRotationPending):
		// Changed since the scan, or the previous version is still
		// reaching the replica zones; the next tick looks again.
		return
	case err != nil:
		s.logger.Warn("scheduled rotation failed", "key_id", k.ID, "error", err)
		return
	}
	s.logger.Info("key rotated on schedule", "key_id", k.ID, "key_version", rotated.CurrentVersion)
}

// spreadDefaultKeys gives the default key of every organization of this
// (home) zone a replica in each zone the deployment has shown since the
// organization was created, so that a zone added later serves it too.
func (s *Service) spreadDefaultKeys(ctx context.Context, now int64) {
	if s.cfg.KnownZones == nil || s.cfg.HomeZone != s.cfg.Zone {
		return
	}
	known := s.cfg.KnownZones()
	for _, o := range s.fsm.Organizations() {
		if ctx.Err() != nil {
			return
		}
		k, ok := s.fsm.Key(o.DefaultKeyID)
		if !ok || k.IsReplicaIn(s.cfg.Zone) {
			continue
		}
		zones := slices.Clone(k.ReplicaZones)
		for _, z := range known {
			if z != s.cfg.Zone && !slices.Contains(zones, z) {
				zones = append(zones, z)
			}
		}
		if len(zones) == len(k.ReplicaZones) {
			continue
		}
		slices.Sort(zones)
		ref := s.ref(KeyRef{Organization: k.Organization, KeyID: k.ID, IfRevision: k.Revision}, now)
		if _, err := s.propose(ctx, fsm.CmdSetReplicaZones, fsm.SetReplicaZonesV1{KeyRefV1: ref, ReplicaZones: zones}); err != nil {
			s.logger.Warn("adding a zone to a default key failed", "key_id", k.ID, "zones", zones, "error", err)
			continue
		}
		s.logger.Info("default key replicated to a new zone", "key_id", k.ID, "organization", o.ID, "replica_zones", zones)
	}
}
