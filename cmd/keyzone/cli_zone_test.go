package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// tableRows returns the "Label:" rows of a key table as label -> value.
func tableRows(out string) map[string]string {
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		label, value, ok := strings.Cut(l, ":")
		if ok {
			rows[label] = strings.TrimSpace(value)
		}
	}
	return rows
}

func TestCLI_CreateWithReplicaZones(t *testing.T) {
	e := newCLITestEnv(t)
	out := string(e.mustRun(t, nil, "key", "create", "--name", "mz", "--replica-zone", "zone-b", "--replica-zone", "zone-c"))
	if got := tableRows(out)["Replica zones"]; got != "zone-b, zone-c" {
		t.Errorf("Replica zones: got %q in\n%s", got, out)
	}
	if p := e.keys.LastCall().Params.(keys.CreateParams); !slices.Equal(p.ReplicaZones, []string{"zone-b", "zone-c"}) {
		t.Errorf("create params: got %+v", p)
	}
	k := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "create", "--name", "single", "-o", "json"))
	if k.ReplicaZones == nil || len(k.ReplicaZones) != 0 {
		t.Errorf("no --replica-zone: got %#v", k.ReplicaZones)
	}
	if p := e.keys.LastCall().Params.(keys.CreateParams); p.ReplicaZones != nil {
		t.Errorf("no --replica-zone: params got %+v", p.ReplicaZones)
	}
}

func TestCLI_ReplicaCommands(t *testing.T) {
	e := newCLITestEnv(t)
	k := e.createKey(t, "k")

	out := string(e.mustRun(t, nil, "key", "add-replica", k.ID, "zone-c"))
	rows := tableRows(out)
	if rows["Replica zones"] != "zone-c" || rows["ID"] != k.ID || rows["State"] != "enabled" {
		t.Errorf("add-replica table:\n%s", out)
	}
	c := e.keys.LastCall()
	if p := c.Params.(apitest.ReplicaCall); c.Method != "AddReplica" || p.Zone != "zone-c" || p.Ref.KeyID != k.ID || p.Ref.IfRevision != 0 {
		t.Errorf("add-replica call: got %+v", c)
	}

	cur := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "get", k.ID, "-o", "json"))
	if _, err := e.run(t, nil, "key", "add-replica", k.ID, "zone-b", "--if-match", strconv.FormatUint(cur.Revision+1, 10)); err == nil ||
		!strings.Contains(err.Error(), "412 revision_mismatch") {
		t.Errorf("stale --if-match: got %v", err)
	}
	got := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "add-replica", k.ID, "zone-b", "--if-match", strconv.FormatUint(cur.Revision, 10), "-o", "json"))
	if !slices.Equal(got.ReplicaZones, []string{"zone-b", "zone-c"}) {
		t.Errorf("add-replica -o json: got %+v", got)
	}
	if p := e.keys.LastCall().Params.(apitest.ReplicaCall); p.Ref.IfRevision != cur.Revision {
		t.Errorf("--if-match: IfRevision got %d, want %d", p.Ref.IfRevision, cur.Revision)
	}

	if _, err := e.run(t, nil, "key", "remove-replica", k.ID, "zone-b", "--if-match", strconv.FormatUint(cur.Revision, 10)); err == nil ||
		!strings.Contains(err.Error(), "412 revision_mismatch") {
		t.Errorf("remove-replica stale --if-match: got %v", err)
	}
	out = string(e.mustRun(t, nil, "key", "remove-replica", k.ID, "zone-b", "--if-match", strconv.FormatUint(got.Revision, 10)))
	if rows := tableRows(out); rows["Replica zones"] != "zone-c" {
		t.Errorf("remove-replica table:\n%s", out)
	}
	c = e.keys.LastCall()
	if p := c.Params.(apitest.ReplicaCall); c.Method != "RemoveReplica" || p.Zone != "zone-b" || p.Ref.IfRevision != got.Revision {
		t.Errorf("remove-replica call: got %+v", c)
	}

	before := len(e.keys.Calls())
	for _, args := range [][]string{
		{"key", "add-replica", k.ID},
		{"key", "remove-replica", k.ID},
		{"key", "add-replica", k.ID, "zone-b", "extra"},
	} {
		if _, err := e.run(t, nil, args...); err == nil || !strings.Contains(err.Error(), "accepts 2 arg(s)") {
			t.Errorf("%v: got %v", args, err)
		}
	}
	if _, err := e.run(t, nil, "key", "remove-replica", k.ID, ".."); err == nil || !strings.Contains(err.Error(), "invalid zone name") {
		t.Errorf("remove-replica ..: got %v", err)
	}
	if n := len(e.keys.Calls()) - before; n != 0 {
		t.Errorf("bad arguments reached the server %d times", n)
	}
	if _, err := e.run(t, nil, "key", "add-replica", k.ID, "zone b"); err == nil || !strings.HasPrefix(err.Error(), "keyzone: 400 invalid_argument") {
		t.Errorf("add-replica with a bad zone: got %v", err)
	}

	replica := e.keys.Put(fsm.Key{ID: "00000000-0000-4000-8000-000000000999", Organization: fsm.DefaultOrganization,
		Name: "r", State: fsm.KeyStateEnabled, PrimaryZone: "zone-b", ReplicaZones: []string{"zone-a"}, Revision: 3})
	_, err := e.run(t, nil, "key", "remove-replica", replica.ID, "zone-a")
	want := "keyzone: 409 not_primary: key " + replica.ID + " is a replica; make lifecycle changes in its primary zone zone-b"
	if err == nil || err.Error() != want {
		t.Errorf("replica: got %v, want %q", err, want)
	}
}

func TestCLI_KeyTable_MultiZone(t *testing.T) {
	e := newCLITestEnv(t)
	pending := e.keys.Put(fsm.Key{ID: "00000000-0000-4000-8000-000000000777", Organization: fsm.DefaultOrganization,
		Name: "p", State: fsm.KeyStateEnabled, CurrentVersion: 1, PrimaryZone: "zone-a", ReplicaZones: []string{"zone-b", "zone-c"},
		PendingVersion: 2, PendingZones: []string{"zone-b", "zone-c"}, PendingSeq: 4, Revision: 3})
	replica := e.keys.Put(fsm.Key{ID: "00000000-0000-4000-8000-000000000999", Organization: fsm.DefaultOrganization,
		Name: "r", State: fsm.KeyStateEnabled, CurrentVersion: 1, PrimaryZone: "zone-b", ReplicaZones: []string{"zone-a"},
		ReplicaSeq: 17, Revision: 5})
	single := e.createKey(t, "single")

	tests := []struct {
		id   string
		want map[string]string // label -> value; "" means the row is absent
	}{
		{pending.ID, map[string]string{"Current version": "1", "Pending version": "2", "Waiting for zones": "zone-b, zone-c",
			"Replica zones": "zone-b, zone-c", "Primary zone": "zone-a", "Replica of change seq": ""}},
		{replica.ID, map[string]string{"Primary zone": "zone-b", "Replica zones": "zone-a", "Replica of change seq": "17",
			"Pending version": "", "Waiting for zones": ""}},
		{single.ID, map[string]string{"Replica zones": "", "Pending version": "", "Waiting for zones": "", "Replica of change seq": ""}},
	}
	for _, tt := range tests {
		out := string(e.mustRun(t, nil, "key", "get", tt.id))
		rows := tableRows(out)
		for label, want := range tt.want {
			got, present := rows[label]
			switch {
			case want == "" && label != "Replica zones" && present:
				t.Errorf("%s: row %q present (%q) in\n%s", tt.id, label, got, out)
			case want != "" && got != want:
				t.Errorf("%s: row %q got %q, want %q in\n%s", tt.id, label, got, want, out)
			}
		}
		if _, ok := rows["Replica zones"]; !ok {
			t.Errorf("%s: no Replica zones row in\n%s", tt.id, out)
		}
	}
	// Rows stay in order: the pending rows follow the replica zones.
	out := string(e.mustRun(t, nil, "key", "get", pending.ID))
	if i, j := strings.Index(out, "Replica zones:"), strings.Index(out, "Waiting for zones:"); i < 0 || j < i {
		t.Errorf("row order:\n%s", out)
	}
	got := cliJSON[wire.Key](t, e.mustRun(t, nil, "key", "get", pending.ID, "-o", "json"))
	if got.PendingVersion != 2 || !slices.Equal(got.PendingZones, []string{"zone-b", "zone-c"}) {
		t.Errorf("-o json: got %+v", got)
	}
}

func TestCLI_ZoneStatus(t *testing.T) {
	e := newCLITestEnv(t)
	out := string(e.mustRun(t, nil, "zone", "status"))
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := []string{
		"ZONE LOCAL NODES CHANGE SEQ APPLIED ACKED LAG LAG AGE",
		"zone-a * 3 12 - - - -",
		"zone-b 2 - 7 10 2 0s",
		"zone-c 0 - 0 0 12 0s",
	}
	if len(lines) != len(want) {
		t.Fatalf("zone status: got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, l := range lines {
		if got := strings.Join(strings.Fields(l), " "); got != want[i] {
			t.Errorf("line %d: got %q, want %q", i, got, want[i])
		}
	}
	// Columns line up: LOCAL's "*" sits under the header's LOCAL.
	if col := strings.Index(lines[0], "LOCAL"); col < 0 || len(lines[1]) <= col || lines[1][col] != '*' {
		t.Errorf("LOCAL column misaligned:\n%s", out)
	}
	if i := strings.Index(lines[0], "NODES"); lines[2][i] != '2' {
		t.Errorf("zone-b NODES column:\n%s", out)
	}

	zs := cliJSON[wire.ZonesResponse](t, e.mustRun(t, nil, "zone", "status", "-o", "json"))
	if len(zs.Zones) != 3 || !zs.Zones[0].Local || zs.Zones[1].Acked != 10 || zs.Zones[2].Nodes == nil {
		t.Errorf("-o json: got %+v", zs)
	}

	e.cluster.ZonesResult = nil
	if out := strings.TrimSpace(string(e.mustRun(t, nil, "zone", "status"))); out != "ZONE  LOCAL  NODES  CHANGE SEQ  APPLIED  ACKED  LAG  LAG AGE" {
		t.Errorf("no zones: got %q", out)
	}
	if _, err := e.run(t, nil, "zone", "status", "extra"); err == nil {
		t.Error("zone status with an argument: got nil error")
	}
}
