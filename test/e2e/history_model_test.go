//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestLifecycleModel checks the porcupine model on hand-made histories,
// so that a verdict of the nemesis run means something: it needs no
// Docker (go test -tags e2e -run TestLifecycleModel ./test/e2e/).
func TestLifecycleModel(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(c int, kind string, from, to int, state string, versions uint32) op {
		return op{client: c, zone: "zone-a", kind: kind, keyID: "k1", start: at(from), end: at(to), result: "ok",
			obs: &keyObs{state, versions}}
	}
	refused := func(c int, kind string, from, to int, result string) op {
		return op{client: c, zone: "zone-a", kind: kind, keyID: "k1", start: at(from), end: at(to), status: 409, result: result}
	}
	lost := func(c int, kind string, from, to int) op {
		return op{client: c, zone: "zone-a", kind: kind, keyID: "k1", start: at(from), end: at(to), result: "transport"}
	}
	tests := []struct {
		name string
		ops  []op
		want porcupine.CheckResult
	}{
		{"sequential lifecycle", []op{
			ok(0, opRotate, 0, 10, "enabled", 2),
			ok(0, opDisable, 20, 30, "disabled", 2),
			refused(1, opRotate, 40, 50, "409 invalid_state"),
			ok(0, opSchedule, 60, 70, "pending_deletion", 2),
			refused(1, opDisable, 80, 90, "409 invalid_state"),
			ok(0, opCancel, 100, 110, "disabled", 2),
			ok(0, opEnable, 120, 130, "enabled", 2),
			ok(1, opGet, 140, 150, "enabled", 2),
		}, porcupine.Ok},
		{"concurrent rotations ordered by the system", []op{
			ok(0, opRotate, 0, 100, "enabled", 3),
			ok(1, opRotate, 10, 50, "enabled", 2),
			ok(2, opGet, 110, 120, "enabled", 3),
		}, porcupine.Ok},
		{"a rotation of unknown outcome that took effect", []op{
			lost(0, opRotate, 0, 10),
			ok(1, opGet, 20, 30, "enabled", 2),
		}, porcupine.Ok},
		{"a rotation of unknown outcome that did not", []op{
			lost(0, opRotate, 0, 10),
			ok(1, opGet, 20, 30, "enabled", 1),
			ok(1, opDisable, 40, 50, "disabled", 1),
		}, porcupine.Ok},
		{"an acknowledged rotation lost", []op{
			ok(0, opRotate, 0, 10, "enabled", 2),
			ok(1, opGet, 20, 30, "enabled", 1),
		}, porcupine.Illegal},
		{"a stale read after a disable", []op{
			ok(0, opDisable, 0, 10, "disabled", 1),
			ok(1, opGet, 20, 30, "enabled", 1),
		}, porcupine.Illegal},
		{"a refusal the state does not explain", []op{
			refused(0, opDisable, 0, 10, "409 invalid_state"),
		}, porcupine.Illegal},
		{"rotation pending before any rotation", []op{
			refused(0, opRotate, 0, 10, "409 rotation_pending"),
		}, porcupine.Illegal},
		{"rotation pending after one", []op{
			ok(0, opRotate, 0, 10, "enabled", 2),
			refused(0, opRotate, 20, 30, "409 rotation_pending"),
		}, porcupine.Ok},
		{"a key missing from its primary zone", []op{
			{client: 0, zone: "zone-a", kind: opGet, keyID: "k1", start: at(0), end: at(10), status: 404, result: "404 key_not_found"},
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := checkLifecycle(tt.ops, "zone-a", "", 10*time.Second)
			if v.result != tt.want {
				t.Errorf("got %s, want %s (%s)\n%s", v.result, tt.want, v, v.detail)
			}
		})
	}
}
