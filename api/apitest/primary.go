package apitest

import (
	"context"
	"slices"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// UpdatePrimary implements api.KeyService: a key whose primary is Zone
// is handed over to one of its replica zones.
func (f *Keys) UpdatePrimary(ctx context.Context, p keys.UpdatePrimaryParams) (*fsm.Key, error) {
	if err := f.begin("UpdatePrimary", p); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	return f.change(p.KeyRef, func(k *fsm.Key, now int64) error {
		if k.PrimaryZone != Zone {
			return &fsm.NotPrimaryError{KeyID: k.ID, PrimaryZone: k.PrimaryZone}
		}
		if !slices.Contains(k.ReplicaZones, p.Zone) {
			return invalid("zone %s is not a replica zone of key %s", p.Zone, k.ID)
		}
		k.ReplicaZones = append(slices.DeleteFunc(k.ReplicaZones, func(z string) bool { return z == p.Zone }), k.PrimaryZone)
		slices.Sort(k.ReplicaZones)
		k.PrimaryZone = p.Zone
		k.PrimaryEpoch++
		return nil
	})
}
