package api_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keyzone/keyzone/api/apitest"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

func TestAPI_AddReplica(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/replicas", `{"zone":"zone-c"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s, want 200", rec.Code, rec.Body)
	}
	got := decode[wire.Key](t, rec)
	if !slices.Equal(got.ReplicaZones, []string{"zone-c"}) || got.Revision <= k.Revision || got.ID != k.ID {
		t.Errorf("key: got %+v", got)
	}
	if want := strconv.Quote(strconv.FormatUint(got.Revision, 10)); rec.Header().Get("ETag") != want {
		t.Errorf("ETag: got %q, want %q", rec.Header().Get("ETag"), want)
	}
	c := e.keys.LastCall()
	want := apitest.ReplicaCall{Ref: keys.KeyRef{Organization: fsm.DefaultOrganization, KeyID: k.ID}, Zone: "zone-c"}
	if c.Method != "AddReplica" || c.Params.(apitest.ReplicaCall) != want {
		t.Errorf("call: got %+v, want AddReplica %+v", c, want)
	}

	got = decode[wire.Key](t, e.do(t, "POST", "/v1/keys/"+k.ID+"/replicas", `{"zone":"zone-b"}`))
	if !slices.Equal(got.ReplicaZones, []string{"zone-b", "zone-c"}) {
		t.Errorf("second replica: got %v", got.ReplicaZones)
	}

	for _, body := range []string{``, `{}`, `{"zone":""}`, `{"zone":1}`, `{"zone":"zone-b","extra":true}`, `{"zones":["zone-b"]}`, `[]`} {
		b := apiError(t, e.do(t, "POST", "/v1/keys/"+k.ID+"/replicas", body), http.StatusBadRequest)
		if b.Code != wire.CodeInvalidArgument {
			t.Errorf("body %q: code got %q", body, b.Code)
		}
	}
	apiError(t, e.do(t, "POST", "/v1/keys/missing/replicas", `{"zone":"zone-b"}`), http.StatusNotFound)
	// The primary zone itself: the service refuses it.
	apiError(t, e.do(t, "POST", "/v1/keys/"+k.ID+"/replicas", `{"zone":"`+apitest.Zone+`"}`), http.StatusBadRequest)
}

func TestAPI_RemoveReplica(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "POST", "/v1/keys", `{"name":"k","replica_zones":["zone-b","zone-c"]}`)
	k := decode[wire.Key](t, rec)
	for _, body := range []string{"", "{}"} {
		// A DELETE takes no body; an empty one or {} is fine.
		rec = e.do(t, "DELETE", "/v1/keys/"+k.ID+"/replicas/zone-b", body)
		if rec.Code != http.StatusOK {
			t.Fatalf("body %q: got %d %s, want 200", body, rec.Code, rec.Body)
		}
	}
	got := decode[wire.Key](t, rec)
	if !slices.Equal(got.ReplicaZones, []string{"zone-c"}) || got.Revision <= k.Revision {
		t.Errorf("key: got %+v", got)
	}
	if rec.Header().Get("ETag") == "" {
		t.Error("no ETag")
	}
	c := e.keys.LastCall()
	want := apitest.ReplicaCall{Ref: keys.KeyRef{Organization: fsm.DefaultOrganization, KeyID: k.ID}, Zone: "zone-b"}
	if c.Method != "RemoveReplica" || c.Params.(apitest.ReplicaCall) != want {
		t.Errorf("call: got %+v, want RemoveReplica %+v", c, want)
	}
	// The zone is a path segment: an escaped one arrives decoded.
	e.do(t, "DELETE", "/v1/keys/"+k.ID+"/replicas/zone%2Dc", "")
	if c := e.keys.LastCall().Params.(apitest.ReplicaCall); c.Zone != "zone-c" {
		t.Errorf("escaped zone: got %q, want zone-c", c.Zone)
	}
	// The last replica gone: [] again, never null.
	rec = e.do(t, "DELETE", "/v1/keys/"+k.ID+"/replicas/zone-c", "")
	if m := fields(t, rec.Body.Bytes()); string(m["replica_zones"]) != "[]" {
		t.Errorf("replica_zones: got %s, want []", m["replica_zones"])
	}
	apiError(t, e.do(t, "DELETE", "/v1/keys/"+k.ID+"/replicas/zone-b", `{"zone":"zone-b"}`), http.StatusBadRequest)
	apiError(t, e.do(t, "DELETE", "/v1/keys/missing/replicas/zone-b", ""), http.StatusNotFound)
}

func TestAPI_Replicas_IfMatch(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	tests := []struct {
		method, path, body string
	}{
		{"POST", "/v1/keys/" + k.ID + "/replicas", `{"zone":"zone-b"}`},
		{"DELETE", "/v1/keys/" + k.ID + "/replicas/zone-b", ""},
	}
	for _, tt := range tests {
		cur := decode[wire.Key](t, e.do(t, "GET", "/v1/keys/"+k.ID, ""))
		stale := strconv.FormatUint(cur.Revision+100, 10)
		before := len(e.keys.Calls())
		body := apiError(t, e.do(t, tt.method, tt.path, tt.body, "If-Match", stale), http.StatusPreconditionFailed)
		if body.Code != wire.CodeRevisionMismatch {
			t.Errorf("%s %s stale If-Match: code got %q", tt.method, tt.path, body.Code)
		}
		if got := e.keys.Calls()[before].Params.(apitest.ReplicaCall).Ref.IfRevision; got != cur.Revision+100 {
			t.Errorf("%s %s: IfRevision got %d, want %d", tt.method, tt.path, got, cur.Revision+100)
		}
		// Bare or as the ETag the API sends.
		etag := strconv.Quote(strconv.FormatUint(cur.Revision, 10))
		rec := e.do(t, tt.method, tt.path, tt.body, "If-Match", etag)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s %s If-Match %s: got %d %s", tt.method, tt.path, etag, rec.Code, rec.Body)
		}
		for _, bad := range []string{"abc", "0", "-1"} {
			apiError(t, e.do(t, tt.method, tt.path, tt.body, "If-Match", bad), http.StatusBadRequest)
		}
		before = len(e.keys.Calls())
		e.do(t, tt.method, tt.path, tt.body, "If-Match", "1", "If-Match", "2")
		if len(e.keys.Calls()) != before {
			t.Errorf("%s %s: two If-Match headers reached the service", tt.method, tt.path)
		}
	}
}

func TestAPI_Replicas_NotPrimary(t *testing.T) {
	e := newEnv(t)
	replica := e.keys.Put(fsm.Key{
		ID: "00000000-0000-4000-8000-000000000999", Organization: fsm.DefaultOrganization, Name: "r",
		State: fsm.KeyStateEnabled, PrimaryZone: "zone-b", ReplicaZones: []string{"zone-a"}, Revision: 5, ReplicaSeq: 17,
	})
	want := "key " + replica.ID + " is a replica; make lifecycle changes in its primary zone zone-b"
	for _, r := range [][3]string{
		{"POST", "/v1/keys/" + replica.ID + "/replicas", `{"zone":"zone-c"}`},
		{"DELETE", "/v1/keys/" + replica.ID + "/replicas/zone-a", ""},
	} {
		body := apiError(t, e.do(t, r[0], r[1], r[2]), http.StatusConflict)
		if body.Code != wire.CodeNotPrimary || body.Message != want {
			t.Errorf("%s %s: got %+v, want %s %q", r[0], r[1], body, wire.CodeNotPrimary, want)
		}
	}
	// The replica reads with the sequence it reflects.
	rec := e.do(t, "GET", "/v1/keys/"+replica.ID, "")
	if got := decode[wire.Key](t, rec); got.ReplicaSeq != 17 || got.PrimaryZone != "zone-b" {
		t.Errorf("replica: got %+v", got)
	}
	if got := string(fields(t, rec.Body.Bytes())["replica_seq"]); got != "17" {
		t.Errorf("replica_seq: got %s, want 17", got)
	}
}

func TestAPI_Replicas_BadZone(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(t, "k")
	long := strings.Repeat("z", 1024)
	before := len(e.keys.Calls())
	// Path values: none may reach the service or answer 5xx.
	for _, z := range []string{"", "..", ".", "%2e%2e", "%2E.", long, "zone%2Fb", "zone%20b", "zone%00b", "%ff", "zo%0Ane"} {
		path := "/v1/keys/" + k.ID + "/replicas/" + z
		rec := e.do(t, "DELETE", path, "")
		if rec.Code < 400 || rec.Code >= 500 {
			t.Errorf("DELETE %.80s: got %d %s, want 4xx", path, rec.Code, rec.Body)
			continue
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("DELETE %.80s: Content-Type %q", path, rec.Header().Get("Content-Type"))
		}
		if strings.Contains(rec.Body.String(), long) {
			t.Errorf("DELETE %.80s: the answer echoes the whole value", path)
		}
	}
	for _, z := range []string{"..", ".", long, "%2e%2e"} {
		body := apiError(t, e.do(t, "DELETE", "/v1/keys/"+k.ID+"/replicas/"+z, ""), http.StatusBadRequest)
		if body.Code != wire.CodeInvalidArgument {
			t.Errorf("%.80s: code got %q", z, body.Code)
		}
	}
	// Body values.
	for _, z := range []string{"", "..", ".", long, "zone/b", "zone b", `\u0000`, "../../etc"} {
		body := apiError(t, e.do(t, "POST", "/v1/keys/"+k.ID+"/replicas", `{"zone":"`+z+`"}`), http.StatusBadRequest)
		if body.Code != wire.CodeInvalidArgument || strings.Contains(body.Message, long) {
			t.Errorf("zone %.80q: got %+v", z, body)
		}
	}
	if n := len(e.keys.Calls()) - before; n != 0 {
		t.Errorf("bad zones reached the service %d times", n)
	}
	if logs := e.logs.String(); strings.Contains(logs, "[ERROR]") || strings.Contains(logs, "[WARN]") {
		t.Errorf("bad zones logged above Debug: %s", logs)
	}
}

func TestAPI_KeyJSONShape_MultiZone(t *testing.T) {
	e := newEnv(t)
	k := e.keys.Put(fsm.Key{
		ID: "00000000-0000-4000-8000-000000000777", Organization: fsm.DefaultOrganization, Name: "mz",
		State: fsm.KeyStateEnabled, CurrentVersion: 1, PrimaryZone: "zone-a", ReplicaZones: []string{"zone-b", "zone-c"},
		PendingVersion: 2, PendingZones: []string{"zone-c"}, PendingSeq: 9, Revision: 3,
	})
	rec := e.do(t, "GET", "/v1/keys/"+k.ID, "")
	m := fields(t, rec.Body.Bytes())
	if string(m["pending_version"]) != "2" || string(m["pending_zones"]) != `["zone-c"]` {
		t.Errorf("pending: got version %s zones %s", m["pending_version"], m["pending_zones"])
	}
	for _, f := range []string{"pending_seq", "replica_seq", "versions"} {
		if _, ok := m[f]; ok {
			t.Errorf("field %s present in %s", f, rec.Body)
		}
	}
	if got := decode[wire.Key](t, rec); got.CurrentVersion != 1 || got.PendingVersion != 2 || !slices.Equal(got.PendingZones, []string{"zone-c"}) {
		t.Errorf("key: got %+v", got)
	}
	// Removing the zone it waited for promotes the version (the fake
	// follows the FSM's rule); the pending fields then disappear.
	rec = e.do(t, "DELETE", "/v1/keys/"+k.ID+"/replicas/zone-c", "")
	m = fields(t, rec.Body.Bytes())
	if _, ok := m["pending_version"]; ok {
		t.Errorf("pending_version after promotion: %s", rec.Body)
	}
	if _, ok := m["pending_zones"]; ok {
		t.Errorf("pending_zones after promotion: %s", rec.Body)
	}
	if got := decode[wire.Key](t, rec); got.CurrentVersion != 2 {
		t.Errorf("current version after promotion: got %d, want 2", got.CurrentVersion)
	}
}

func TestAPI_Zones(t *testing.T) {
	e := newEnv(t)
	rec := e.do(t, "GET", "/v1/zones", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status: got %d %s", rec.Code, rec.Body)
	}
	zs := decode[wire.ZonesResponse](t, rec).Zones
	if len(zs) != 3 {
		t.Fatalf("zones: got %+v, want 3", zs)
	}
	a, b, c := zs[0], zs[1], zs[2]
	if a.Name != "zone-a" || !a.Local || len(a.Nodes) != 3 || a.Nodes[0] != (wire.ZoneNode{ID: "node-1", APIAddress: "http://127.0.0.1:8201"}) || a.ChangeSeq != 12 {
		t.Errorf("zone-a: got %+v", a)
	}
	if b.Name != "zone-b" || b.Local || len(b.Nodes) != 2 || b.Applied != 7 || b.Acked != 10 || b.LagEntries != 2 {
		t.Errorf("zone-b: got %+v", b)
	}
	if c.Name != "zone-c" || c.Nodes == nil || len(c.Nodes) != 0 || c.LagEntries != 12 {
		t.Errorf("zone-c: got %+v", c)
	}

	if got := sortedKeys(fields(t, rec.Body.Bytes())); !slices.Equal(got, []string{"zones"}) {
		t.Errorf("fields: got %v", got)
	}
	var raw struct {
		Zones []map[string]any `json:"zones"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	// Every field is present, zeros included; nodes is [] when empty.
	want := []string{"acked", "applied", "change_seq", "lag_entries", "lag_seconds", "local", "name", "nodes"}
	for i, z := range raw.Zones {
		if got := slices.Sorted(maps.Keys(z)); !slices.Equal(got, want) {
			t.Errorf("zone %d fields: got %v, want %v", i, got, want)
		}
	}
	if n, ok := raw.Zones[2]["nodes"].([]any); !ok || len(n) != 0 {
		t.Errorf("zone-c nodes: got %#v, want []", raw.Zones[2]["nodes"])
	}
	node, _ := raw.Zones[0]["nodes"].([]any)[0].(map[string]any)
	if got := slices.Sorted(maps.Keys(node)); !slices.Equal(got, []string{"api_address", "id"}) {
		t.Errorf("node fields: got %v", got)
	}

	e.cluster.ZonesResult = nil
	rec = e.do(t, "GET", "/v1/zones", "")
	if got := string(fields(t, rec.Body.Bytes())["zones"]); got != "[]" {
		t.Errorf("no zones: got %s, want []", got)
	}
	apiError(t, e.do(t, "POST", "/v1/zones", "{}"), http.StatusMethodNotAllowed)
}
