package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
)

// KeyDigest is what one zone holds of a multi-zone key, reduced to what
// must agree between the key's primary zone and each of its replica zones.
// `keyzone cluster verify` compares them across zones.
type KeyDigest struct {
	KeyID        string   `json:"key_id"`
	PrimaryZone  string   `json:"primary_zone"`
	ReplicaZones []string `json:"replica_zones"`
	// Digest is ReplicatedDigest of the key as this zone holds it.
	Digest string `json:"digest"`
	// ReplicaSeq is the primary zone's change-log sequence this state of
	// the key corresponds to: on a replica, the entry it applied
	// (Key.ReplicaSeq); on the primary, the key's newest entry in its
	// zone's change log. A replica with a lower sequence lags; one with
	// the same sequence and another digest has diverged.
	ReplicaSeq uint64 `json:"replica_seq"`
}

// ReplicatedDigests returns the digest of every live key of this zone
// that is replicated: primaries with replica zones and replicas of other
// zones' primaries, sorted by key id. Purged keys are left out (their
// tombstones hold only id and organization). The answer depends only on
// the state, so every node of a zone that applied the same log returns
// the same. It visits every live key: it serves the operator's verify,
// not requests.
func (f *FSM) ReplicatedDigests() []KeyDigest {
	type held struct {
		k   *Key
		seq uint64
	}
	f.mu.RLock()
	var hs []held
	for _, k := range f.st.keys {
		switch {
		case k.IsReplicaIn(f.zone):
			hs = append(hs, held{k, k.ReplicaSeq})
		case len(k.ReplicaZones) > 0:
			hs = append(hs, held{k, f.st.changes[k.ID].Seq})
		}
	}
	f.mu.RUnlock()

	// Stored keys are immutable, so hashing needs no lock.
	slices.SortFunc(hs, func(a, b held) int { return strings.Compare(a.k.ID, b.k.ID) })
	out := make([]KeyDigest, len(hs))
	for i, h := range hs {
		out[i] = KeyDigest{
			KeyID:        h.k.ID,
			PrimaryZone:  h.k.PrimaryZone,
			ReplicaZones: nonNil(slices.Clone(h.k.ReplicaZones)),
			Digest:       ReplicatedDigest(h.k),
			ReplicaSeq:   h.seq,
		}
	}
	return out
}

// ReplicatedDigest returns the hex SHA-256 of the canonical JSON of k
// without its zone-local fields: Revision (each zone numbers its own
// changes) and ReplicaSeq are zeroed, and nil lists count as empty ones.
// Everything else, wrapped material included, is replicated verbatim by
// the change log, so a replica that applied the primary's latest entry
// has the primary's digest.
//
// The canonical JSON is encoding/json's encoding of Key, whose field
// order is fixed and which holds no maps. A field added to Key changes
// every digest unless it is omitempty; zones that run different versions
// may then disagree until they run the same one.
func ReplicatedDigest(k *Key) string {
	c := *k
	c.Revision, c.ReplicaSeq = 0, 0
	c.Tags = nonNil(c.Tags)
	c.ReplicaZones = nonNil(c.ReplicaZones)
	c.Versions = nonNil(c.Versions)
	// Marshal cannot fail: Key holds only strings, integers, booleans,
	// byte slices and slices of them.
	b, _ := json.Marshal(&c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
