//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/keyzone/keyzone/api/wire"
)

// keyObs is what a lifecycle answer shows of a key: the model's state.
type keyObs struct {
	state    string
	versions uint32
}

func (k keyObs) String() string { return fmt.Sprintf("%s/v%d", k.state, k.versions) }

// observe reduces a key to the model's state. A pending version is a
// version: it exists (rotation is two-phase) even though it does not
// encrypt yet.
func observe(k wire.Key) *keyObs {
	return &keyObs{state: k.State, versions: max(k.CurrentVersion, k.PendingVersion)}
}

// Lifecycle operations checked for linearizability.
const (
	opGet      = "get"
	opRotate   = "rotate"
	opDisable  = "disable"
	opEnable   = "enable"
	opSchedule = "schedule-deletion"
	opCancel   = "cancel-deletion"
)

var lifecycleKinds = map[string]bool{
	opGet: true, opRotate: true, opDisable: true, opEnable: true, opSchedule: true, opCancel: true,
}

// lcInput and lcOutput are the porcupine operation's input and output.
type lcInput struct {
	keyID string
	kind  string
}

type lcOutput struct {
	// unknown: no answer, a 5xx, or an answer that does not say whether
	// the change was made. The operation may have taken effect at any
	// point after its call; its return is at +infinity.
	unknown bool
	ok      bool
	code    string // error code of a definite refusal
	obs     keyObs // the key as answered, when ok
}

// effect is what kind does to s when it succeeds, and whether it can.
func effect(kind string, s keyObs) (bool, keyObs) {
	movable := s.state == "enabled" || s.state == "disabled"
	switch kind {
	case opGet:
		return true, s
	case opRotate:
		return s.state == "enabled", keyObs{"enabled", s.versions + 1}
	case opDisable:
		return movable, keyObs{"disabled", s.versions}
	case opEnable:
		return movable, keyObs{"enabled", s.versions}
	case opSchedule:
		return movable, keyObs{"pending_deletion", s.versions}
	case opCancel:
		return s.state == "pending_deletion", keyObs{"disabled", s.versions}
	}
	return false, s
}

// lifecycleModel is the sequential specification of one key in its
// primary zone: a state and a version count. The key is created enabled
// with one version (creation is acknowledged before any operation on it
// starts), never protected, and never purged (the workload's deletion
// window is the server's minimum, days long).
var lifecycleModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var ids []string
		for _, o := range h {
			id := o.Input.(lcInput).keyID
			if _, ok := byKey[id]; !ok {
				ids = append(ids, id)
			}
			byKey[id] = append(byKey[id], o)
		}
		sort.Strings(ids)
		out := make([][]porcupine.Operation, 0, len(ids))
		for _, id := range ids {
			out = append(out, byKey[id])
		}
		return out
	},
	Init: func() any { return keyObs{"enabled", 1} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(keyObs), input.(lcInput), output.(lcOutput)
		can, next := effect(in.kind, s)
		switch {
		case out.unknown:
			if can {
				return true, next
			}
			return true, s
		case out.ok:
			return can && out.obs == next, next
		}
		switch out.code {
		case wire.CodeInvalidState:
			return !can, s
		case wire.CodeRotationPending:
			// The previous rotation waits for replica zones to ack it,
			// which the model does not see: possible once a key has
			// been rotated at least once.
			return in.kind == opRotate && s.state == "enabled" && s.versions >= 2, s
		case wire.CodeVersionConflict:
			// Concurrent rotations took the version number every attempt drew.
			return in.kind == opRotate && s.state == "enabled", s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(lcInput), output.(lcOutput)
		switch {
		case out.unknown:
			return in.kind + " -> ?"
		case out.ok:
			return in.kind + " -> " + out.obs.String()
		}
		return in.kind + " -> " + out.code
	},
	DescribeState: func(state any) string { return state.(keyObs).String() },
}

// lifecycleVerdict is the outcome of the linearizability check.
type lifecycleVerdict struct {
	result     porcupine.CheckResult
	keys, ops  int
	unknown    int    // operations of unknown outcome
	dropped    int    // definite refusals that say nothing of the key (404 from a zone without the replica yet...)
	illegalKey string // a key whose history is not linearizable
	detail     string // its operations, for the log
	vizPath    string // porcupine's visualization of the failure
	took       time.Duration
}

// isLifecycleUnknown says whether a lifecycle answer leaves the outcome
// open. Besides no answer and 5xx: 499 (the node saw the caller give up)
// and 409 not_primary, which a replica zone answers when forwarding to the
// primary zone failed, including after the request may have been delivered.
func isLifecycleUnknown(o op) bool {
	return o.result == "transport" || o.status >= 500 || o.status == 499 ||
		(o.status == 409 && strings.HasSuffix(o.result, wire.CodeNotPrimary))
}

// checkLifecycle runs porcupine over the lifecycle operations of the
// history: per key, within its primary zone (zone-a), including the ones
// sent to a replica zone and forwarded there. Reads (get) count only when
// served by the primary zone.
func checkLifecycle(ops []op, primaryZone string, vizDir string, timeout time.Duration) lifecycleVerdict {
	var v lifecycleVerdict
	var base time.Time
	for _, o := range ops {
		if base.IsZero() || o.start.Before(base) {
			base = o.start
		}
	}
	keys := map[string]bool{}
	var hist []porcupine.Operation
	for _, o := range ops {
		if !lifecycleKinds[o.kind] || o.keyID == "" {
			continue
		}
		if o.kind == opGet && o.zone != primaryZone {
			continue
		}
		out := lcOutput{}
		ret := o.end.Sub(base).Nanoseconds()
		code := ""
		if i := strings.IndexByte(o.result, ' '); i > 0 {
			code = o.result[i+1:]
		}
		switch {
		case o.ok():
			if o.obs == nil {
				v.dropped++
				continue
			}
			out.ok, out.obs = true, *o.obs
		case isLifecycleUnknown(o):
			if o.kind == opGet {
				// A read without an answer constrains nothing.
				continue
			}
			out.unknown = true
			ret = math.MaxInt64
			v.unknown++
		case code == wire.CodeInvalidState || code == wire.CodeRotationPending || code == wire.CodeVersionConflict:
			out.code = code
		case code == wire.CodeKeyNotFound && o.zone == primaryZone:
			// An acknowledged key missing from its primary zone: kept, so
			// that the model refuses it.
			out.code = code
		default:
			v.dropped++
			continue
		}
		keys[o.keyID] = true
		hist = append(hist, porcupine.Operation{
			ClientId: o.client,
			Input:    lcInput{keyID: o.keyID, kind: o.kind},
			Call:     o.start.Sub(base).Nanoseconds(),
			Output:   out,
			Return:   ret,
		})
	}
	v.keys, v.ops = len(keys), len(hist)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(lifecycleModel, hist, timeout)
	v.took = time.Since(start)
	v.result = res
	if res != porcupine.Illegal {
		return v
	}
	// Name one offending key and show its history.
	for _, part := range lifecycleModel.Partition(hist) {
		if porcupine.CheckOperations(lifecycleModel, part) {
			continue
		}
		v.illegalKey = part[0].Input.(lcInput).keyID
		var b strings.Builder
		sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
		for _, o := range part {
			end := "inf"
			if o.Return != math.MaxInt64 {
				end = fmt.Sprint(time.Duration(o.Return).Round(time.Millisecond))
			}
			fmt.Fprintf(&b, "  client %3d [%v, %s] %s\n", o.ClientId, time.Duration(o.Call).Round(time.Millisecond), end,
				lifecycleModel.DescribeOperation(o.Input, o.Output))
		}
		v.detail = b.String()
		break
	}
	if vizDir != "" {
		p := filepath.Join(vizDir, "lifecycle-linearizability.html")
		if err := porcupine.VisualizePath(lifecycleModel, info, p); err == nil {
			v.vizPath = p
		}
	}
	return v
}

// String is the verdict's line of the summary.
func (v lifecycleVerdict) String() string {
	s := fmt.Sprintf("porcupine: %s (%d keys, %d lifecycle operations of which %d of unknown outcome, %d definite refusals set aside; checked in %v)",
		v.result, v.keys, v.ops, v.unknown, v.dropped, v.took.Round(time.Millisecond))
	if v.illegalKey != "" {
		s += "; not linearizable: key " + v.illegalKey
	}
	if v.vizPath != "" {
		s += "; visualization " + v.vizPath
	}
	return s
}

// vizDir is where a failed check leaves porcupine's visualization: kept
// after the test, unlike t.TempDir.
func vizDir(project string) string {
	d := filepath.Join(os.TempDir(), project)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return ""
	}
	return d
}
