package fsm

// KeyCount is how many live keys of one state a node holds, split by
// whether this zone is their primary zone or holds a replica.
type KeyCount struct {
	Primary int
	Replica int
}

// KeysByState counts the live keys per state, for the metrics endpoint.
// It visits every key under the read lock, so it serves scrapes (seconds
// apart), not requests; a count kept by Apply would make the state
// machine pay on every entry for what a scrape asks now and then.
// Every state of the key lifecycle is present, with zero counts when no
// key is in it, so that a gauge goes back to zero instead of vanishing.
func (f *FSM) KeysByState() map[KeyState]KeyCount {
	out := map[KeyState]KeyCount{
		KeyStateEnabled:         {},
		KeyStateDisabled:        {},
		KeyStatePendingDeletion: {},
		KeyStatePendingImport:   {},
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, k := range f.st.keys {
		c := out[k.State]
		if k.IsReplicaIn(f.zone) {
			c.Replica++
		} else {
			c.Primary++
		}
		out[k.State] = c
	}
	return out
}
