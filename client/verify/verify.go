// Package verify is the replication's own consistency check, run from
// outside the deployment through the API: it asks one node for every zone
// and its nodes (GET /v1/zones), fetches the digest report of one
// reachable node of each zone (GET /v1/cluster/digest), and compares, for
// every multi-zone key, the primary zone's digest with each replica
// zone's. `keyzone cluster verify` is its command line.
//
// Replicas legitimately lag their primary by a pull (milliseconds when
// the zones are connected), so a single check may catch a key in flight;
// Checker.Wait checks again until the zones agree or a deadline passes.
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// Problem is the kind of a Difference. Values are stable: scripts may
// switch on them.
type Problem string

const (
	// MissingReplica: a zone of the key's replica set holds no copy, or
	// is not a zone of the deployment.
	MissingReplica Problem = "missing_replica"
	// ReplicaBehind: the replica reflects an older change of the
	// primary's change log; it catches up on its next pull.
	ReplicaBehind Problem = "replica_behind"
	// DigestDiffers: the replica's state differs from the primary's
	// although it is not behind: the zones have diverged.
	DigestDiffers Problem = "digest_differs"
	// UnexpectedReplica: a zone holds a replica but is not in the key's
	// replica set (it has not yet applied its removal, or missed it).
	UnexpectedReplica Problem = "unexpected_replica"
	// MissingPrimary: a zone holds a replica whose primary zone has no
	// such multi-zone key (purged or no longer replicated there), or whose
	// primary zone is not a zone of the deployment.
	MissingPrimary Problem = "missing_primary"
	// ConflictingPrimary: two zones both hold the key as their primary.
	ConflictingPrimary Problem = "conflicting_primary"
)

// Difference is one disagreement about one key between its primary zone
// and another zone.
type Difference struct {
	KeyID       string `json:"key_id"`
	PrimaryZone string `json:"primary_zone"`
	// Zone is the zone that disagrees with the primary zone.
	Zone    string  `json:"zone"`
	Problem Problem `json:"problem"`
	// Detail says what differs, for people.
	Detail string `json:"detail"`
}

// String is the one-line form the CLI prints.
func (d Difference) String() string {
	return fmt.Sprintf("key %s: %s in zone %s (primary zone %s): %s", d.KeyID, d.Problem, d.Zone, d.PrimaryZone, d.Detail)
}

// Zone is how one zone answered.
type Zone struct {
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	// Node and Address are the node that answered, when one did.
	Node    string `json:"node,omitempty"`
	Address string `json:"address,omitempty"`
	// ChangeSeq is the head of the zone's change log; Keys the number of
	// multi-zone keys it holds, primaries and replicas.
	ChangeSeq uint64 `json:"change_seq"`
	Keys      int    `json:"keys"`
	// Error says why no node answered.
	Error string `json:"error,omitempty"`
}

// Report is the outcome of one check.
type Report struct {
	// Zones lists every zone of the deployment as the asked node knows
	// them, its own first.
	Zones []Zone `json:"zones"`
	// KeysChecked is the number of distinct multi-zone keys the reachable
	// zones hold.
	KeysChecked int `json:"keys_checked"`
	// Differences are sorted by key id, zone and problem; [] when none.
	Differences []Difference `json:"differences"`
}

// Unreachable returns the names of the zones no node of which answered.
func (r Report) Unreachable() []string {
	var out []string
	for _, z := range r.Zones {
		if !z.Reachable {
			out = append(out, z.Name)
		}
	}
	return out
}

// OK reports whether every zone answered and every replica agrees with
// its primary.
func (r Report) OK() bool { return len(r.Differences) == 0 && len(r.Unreachable()) == 0 }

// Summary is the report's last line: "3 multi-zone keys, 3 zones, all
// replicas agree", or what is wrong.
func (r Report) Summary() string {
	head := fmt.Sprintf("%s, %s", plural(r.KeysChecked, "multi-zone key"), plural(len(r.Zones), "zone"))
	if r.OK() {
		return head + ", all replicas agree"
	}
	var parts []string
	if n := len(r.differingKeys()); n > 0 {
		verb := "differ"
		if n == 1 {
			verb = "differs"
		}
		parts = append(parts, plural(n, "key")+" "+verb)
	}
	if u := r.Unreachable(); len(u) > 0 {
		parts = append(parts, fmt.Sprintf("%s unreachable (%s)", plural(len(u), "zone"), strings.Join(u, ", ")))
	}
	return head + ": " + strings.Join(parts, "; ")
}

func (r Report) differingKeys() map[string]bool {
	m := map[string]bool{}
	for _, d := range r.Differences {
		m[d.KeyID] = true
	}
	return m
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Compare compares the digest reports of the zones that answered, one per
// zone; unreachable names the zones that could not be asked. A key is
// checked as far as the reachable zones allow: nothing is reported about
// what only an unreachable zone could tell. A zone that is neither
// reachable nor unreachable is not a zone of the deployment. Compare
// returns the number of distinct multi-zone keys in the reports and the
// differences, sorted by key id, zone and problem.
func Compare(reports []wire.DigestReport, unreachable []string) (keys int, diffs []Difference) {
	known := map[string]bool{}
	away := map[string]bool{}
	for _, z := range unreachable {
		known[z], away[z] = true, true
	}
	type holding struct {
		zone string
		d    wire.KeyDigest
	}
	byKey := map[string][]holding{}
	for _, r := range reports {
		known[r.Zone] = true
		for _, d := range r.Keys {
			byKey[d.KeyID] = append(byKey[d.KeyID], holding{r.Zone, d})
		}
	}

	for _, id := range slices.Sorted(maps.Keys(byKey)) {
		hs := byKey[id]
		slices.SortStableFunc(hs, func(a, b holding) int { return strings.Compare(a.zone, b.zone) })
		diff := func(primary, zone string, p Problem, format string, args ...any) {
			diffs = append(diffs, Difference{KeyID: id, PrimaryZone: primary, Zone: zone, Problem: p, Detail: fmt.Sprintf(format, args...)})
		}
		// The primary is the zone that holds the key as its own.
		var primary *holding
		for i, h := range hs {
			if h.d.PrimaryZone != h.zone {
				continue
			}
			if primary == nil {
				primary = &hs[i]
				continue
			}
			diff(primary.zone, h.zone, ConflictingPrimary, "zones %s and %s both hold it as their primary", primary.zone, h.zone)
		}
		if primary == nil {
			for _, h := range hs {
				switch pz := h.d.PrimaryZone; {
				case away[pz]:
					// Only the primary zone could tell.
				case !known[pz]:
					diff(pz, h.zone, MissingPrimary, "its primary zone %s is not a zone of the deployment", pz)
				default:
					diff(pz, h.zone, MissingPrimary, "primary zone %s holds no such multi-zone key: purged, or no longer replicated to %s", pz, h.zone)
				}
			}
			continue
		}

		p := primary.d
		replicas := map[string]wire.KeyDigest{}
		for _, h := range hs {
			if h.d.PrimaryZone == h.zone {
				continue // the primary, or a conflicting one reported above
			}
			replicas[h.zone] = h.d
			if !slices.Contains(p.ReplicaZones, h.zone) {
				diff(primary.zone, h.zone, UnexpectedReplica, "zone %s holds a replica but is not among the replica zones %v", h.zone, p.ReplicaZones)
			}
		}
		for _, z := range p.ReplicaZones {
			r, held := replicas[z]
			switch {
			case away[z]:
				// Unreachable: reported once for the zone.
			case !known[z]:
				diff(primary.zone, z, MissingReplica, "replica zone %s is not a zone of the deployment", z)
			case !held:
				diff(primary.zone, z, MissingReplica, "zone %s holds no replica (the primary is at change %d)", z, p.ReplicaSeq)
			case r.Digest == p.Digest:
			case r.ReplicaSeq < p.ReplicaSeq:
				diff(primary.zone, z, ReplicaBehind, "the replica reflects change %d of %s's change log, the primary change %d", r.ReplicaSeq, primary.zone, p.ReplicaSeq)
			default:
				diff(primary.zone, z, DigestDiffers, "%s", describe(primary.zone, p, r))
			}
		}
	}
	slices.SortStableFunc(diffs, func(a, b Difference) int {
		return cmp.Or(strings.Compare(a.KeyID, b.KeyID), strings.Compare(a.Zone, b.Zone), strings.Compare(string(a.Problem), string(b.Problem)))
	})
	return len(byKey), diffs
}

// describe says how a replica that is not behind differs from its primary.
func describe(primaryZone string, p, r wire.KeyDigest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digest %s, the primary's %s", short(r.Digest), short(p.Digest))
	if r.ReplicaSeq == p.ReplicaSeq {
		fmt.Fprintf(&b, ", at the same change %d: diverged", p.ReplicaSeq)
	} else {
		fmt.Fprintf(&b, "; the replica claims change %d, beyond the primary's %d", r.ReplicaSeq, p.ReplicaSeq)
	}
	if r.PrimaryZone != primaryZone {
		fmt.Fprintf(&b, "; the replica names primary zone %s", r.PrimaryZone)
	}
	if !slices.Equal(r.ReplicaZones, p.ReplicaZones) {
		fmt.Fprintf(&b, "; replica zones %v, the primary's %v", r.ReplicaZones, p.ReplicaZones)
	}
	return b.String()
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// Defaults of Checker.
const (
	DefaultNodeTimeout = 10 * time.Second
	DefaultInterval    = 250 * time.Millisecond
)

// Dialer returns a client of the node at addr, authenticated as the
// caller (the digests need the root token).
type Dialer func(addr string) (*client.Client, error)

// Checker fetches and compares the zones' digests. Set the fields before
// the first check; a Checker keeps one client per node address across
// checks and is safe for concurrent use.
type Checker struct {
	// Addr is the node asked for the deployment's zones; it is also asked
	// first for its own zone's digests.
	Addr string
	// Dial makes the client of a node. Required.
	Dial Dialer
	// NodeTimeout bounds each call to one node; 0 means DefaultNodeTimeout.
	NodeTimeout time.Duration
	// Interval is the pause between two checks of Wait; 0 means
	// DefaultInterval.
	Interval time.Duration

	mu      sync.Mutex
	clients map[string]*client.Client
}

// Check lists the zones, fetches the digests of one reachable node of each
// zone (trying the zone's nodes in turn) and compares them. It fails only
// when the zones can't be listed; a zone with no node that answers is
// reported unreachable.
func (c *Checker) Check(ctx context.Context) (Report, error) {
	if c.Dial == nil {
		return Report{}, errors.New("verify: Checker.Dial is required")
	}
	entry, err := c.client(c.Addr)
	if err != nil {
		return Report{}, err
	}
	zctx, cancel := context.WithTimeout(ctx, c.nodeTimeout())
	zs, err := entry.Zones(zctx)
	cancel()
	if err != nil {
		return Report{}, fmt.Errorf("list zones: %w", err)
	}

	zones := make([]Zone, len(zs.Zones))
	reports := make([]*wire.DigestReport, len(zs.Zones))
	var wg sync.WaitGroup
	for i, z := range zs.Zones {
		var addrs []string
		if z.Local {
			addrs = append(addrs, c.Addr)
		}
		for _, n := range z.Nodes {
			if !slices.Contains(addrs, n.APIAddress) {
				addrs = append(addrs, n.APIAddress)
			}
		}
		wg.Go(func() { zones[i], reports[i] = c.fetch(ctx, z.Name, addrs) })
	}
	wg.Wait()

	var got []wire.DigestReport
	var unreachable []string
	for i, r := range reports {
		if r == nil {
			unreachable = append(unreachable, zones[i].Name)
			continue
		}
		got = append(got, *r)
	}
	rep := Report{Zones: zones}
	rep.KeysChecked, rep.Differences = Compare(got, unreachable)
	if rep.Differences == nil {
		rep.Differences = []Difference{}
	}
	return rep, nil
}

// fetch asks the zone's nodes in turn for their digests; the first answer
// wins. A nil report means no node answered; Zone.Error says why.
func (c *Checker) fetch(ctx context.Context, zone string, addrs []string) (Zone, *wire.DigestReport) {
	z := Zone{Name: zone}
	if len(addrs) == 0 {
		z.Error = "no live node known"
		return z, nil
	}
	var errs []string
	for _, addr := range addrs {
		rep, err := c.digest(ctx, addr)
		if err == nil && rep.Zone != zone {
			err = fmt.Errorf("node %s answered for zone %q", rep.Node, rep.Zone)
		}
		if err == nil {
			z.Reachable, z.Node, z.Address, z.ChangeSeq, z.Keys = true, rep.Node, addr, rep.ChangeSeq, len(rep.Keys)
			return z, &rep
		}
		// A transport error names the URL already; keep its cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	z.Error = strings.Join(errs, "; ")
	return z, nil
}

func (c *Checker) digest(ctx context.Context, addr string) (wire.DigestReport, error) {
	cl, err := c.client(addr)
	if err != nil {
		return wire.DigestReport{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.nodeTimeout())
	defer cancel()
	return cl.Digest(ctx)
}

// Wait checks until the zones agree or d has passed (d bounds when the
// last check starts), pausing Interval between checks, and returns the
// last check's report and error. With d <= 0 it checks once. It returns
// ctx.Err() if ctx ends first.
func (c *Checker) Wait(ctx context.Context, d time.Duration) (Report, error) {
	deadline := time.Now().Add(d)
	for {
		r, err := c.Check(ctx)
		left := time.Until(deadline)
		if (err == nil && r.OK()) || left <= 0 {
			return r, err
		}
		t := time.NewTimer(min(c.interval(), left))
		select {
		case <-ctx.Done():
			t.Stop()
			return r, ctx.Err()
		case <-t.C:
		}
	}
}

// client returns the client of addr, made once.
func (c *Checker) client(addr string) (*client.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[addr]; ok {
		return cl, nil
	}
	cl, err := c.Dial(addr)
	if err != nil {
		return nil, err
	}
	if c.clients == nil {
		c.clients = map[string]*client.Client{}
	}
	c.clients[addr] = cl
	return cl, nil
}

func (c *Checker) nodeTimeout() time.Duration {
	if c.NodeTimeout > 0 {
		return c.NodeTimeout
	}
	return DefaultNodeTimeout
}

func (c *Checker) interval() time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	return DefaultInterval
}
