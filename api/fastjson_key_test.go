package api

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
)

// A key as the server answers it: every field set, the optional ones too.
func sampleWireKey() wire.Key {
	at := time.Date(2026, 11, 23, 20, 33, 34, 120_000_000, time.UTC)
	return wire.Key{
		ID: "0f8e2a44-1c5b-4d6e-9f00-112233445566", Organization: "bb31598bad08c6d8",
		Name: "payments/card-data", Description: "card numbers of the EU shop",
		Tags: []string{"pci", "team=payments"}, Usage: "encrypt_decrypt", Algorithm: "AES_256_GCM",
		Origin: "keyzone", State: "enabled", Protected: true,
		RotationPolicy: wire.RotationPolicy{RotationPeriod: "720h0m0s", NextRotationAt: at.Add(720 * time.Hour)},
		CurrentVersion: 3, PrimaryZone: "zone-a", ReplicaZones: []string{"zone-b", "zone-c"},
		CreatedAt: at, UpdatedAt: at.Add(time.Nanosecond), DeletionAt: at.Add(7 * 24 * time.Hour),
		Revision: 1234567, PendingVersion: 4, PendingZones: []string{"zone-c"}, ReplicaSeq: 99,
	}
}

func TestAppendKey(t *testing.T) {
	full := sampleWireKey()
	// The key of a creation, through the same conversion renderKey uses.
	created := wireKey(&fsm.Key{ID: full.ID, Organization: full.Organization, Name: "k", Usage: "encrypt_decrypt",
		Algorithm: "AES_256_GCM", Origin: "keyzone", State: fsm.KeyStateEnabled, CurrentVersion: 1, PrimaryZone: "zone-a",
		CreatedAt: 1_795_000_000_123_456_789, UpdatedAt: 1_795_000_000_123_456_789, Revision: 12})
	for _, tt := range []struct {
		name string
		key  func(k *wire.Key)
		fast bool
	}{
		{"every field", func(*wire.Key) {}, true},
		{"zero", func(k *wire.Key) { *k = wire.Key{} }, true},
		{"a creation's", func(k *wire.Key) { *k = created }, true},
		{"empty slices", func(k *wire.Key) { k.Tags, k.ReplicaZones, k.PendingZones = []string{}, []string{}, []string{} }, true},
		{"no rotation", func(k *wire.Key) { k.RotationPolicy = wire.RotationPolicy{} }, true},
		{"whole seconds", func(k *wire.Key) { k.CreatedAt = k.CreatedAt.Truncate(time.Second) }, true},
		{"largest numbers", func(k *wire.Key) {
			k.CurrentVersion, k.PendingVersion, k.Revision, k.ReplicaSeq = math.MaxUint32, math.MaxUint32, math.MaxUint64, math.MaxUint64
		}, true},
		{"printable ASCII", func(k *wire.Key) { k.Description = " !#$%'()*+,-./09:;=?@AZ[]^_`az{|}~\x7f" }, true},
		{"HTML in a name", func(k *wire.Key) { k.Name = "a<b" }, false},
		{"ampersand in a tag", func(k *wire.Key) { k.Tags = []string{"ok", "a&b"} }, false},
		{"quote in a zone", func(k *wire.Key) { k.PendingZones = []string{`z"`} }, false},
		{"backslash", func(k *wire.Key) { k.Description = `a\b` }, false},
		{"newline", func(k *wire.Key) { k.Description = "a\nb" }, false},
		{"non-ASCII", func(k *wire.Key) { k.Description = "clé" }, false},
		{"line separator", func(k *wire.Key) { k.Name = "\u2028" }, false},
		{"invalid UTF-8", func(k *wire.Key) { k.Origin = "\xff" }, false},
		{"HTML in the period", func(k *wire.Key) { k.RotationPolicy.RotationPeriod = "<1h" }, false},
		{"not in UTC", func(k *wire.Key) { k.UpdatedAt = k.UpdatedAt.In(time.FixedZone("CET", 3600)) }, false},
		{"year 10000", func(k *wire.Key) { k.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
	} {
		k := full
		tt.key(&k)
		if got := checkAppendKey(t, k); got != tt.fast {
			t.Errorf("%s: encoded without encoding/json: got %v, want %v", tt.name, got, tt.fast)
		}
	}
}

// checkAppendKey checks that appendKey writes json.Marshal's bytes when
// it does not decline, and reports whether it did not.
func checkAppendKey(t *testing.T, k wire.Key) bool {
	t.Helper()
	want, err := json.Marshal(k)
	if err != nil {
		// What encoding/json refuses, appendKey must decline too.
		if _, ok := appendKey(nil, k); ok {
			t.Fatalf("appendKey encoded %+v, which json.Marshal refuses: %v", k, err)
		}
		return false
	}
	prefix := []byte("prefix")
	got, ok := appendKey(prefix, k)
	if !ok {
		return false
	}
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("appendKey:\n got %s\nwant %s", got, want)
	}
	return true
}

// Random keys, in and out of the shape appendKey writes itself, against
// json.Marshal.
func TestAppendKey_Random(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 23))
	alphabet := []string{"a", "Z", "0", "-", "/", "=", " ", "~", "<", "&", `"`, `\`, "\n", "é", "\u2028", "\xff", "\x7f"}
	str := func() string {
		var b strings.Builder
		for range r.IntN(6) {
			// Mostly plain characters, so that most keys take the fast path.
			if r.IntN(150) == 0 {
				b.WriteString(alphabet[r.IntN(len(alphabet))])
			} else {
				b.WriteString(alphabet[r.IntN(7)])
			}
		}
		return b.String()
	}
	strs := func() []string {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		s := make([]string, 1+r.IntN(3))
		for i := range s {
			s[i] = str()
		}
		return s
	}
	zones := []*time.Location{time.UTC, time.UTC, time.UTC, time.UTC, time.UTC, time.UTC, time.UTC, time.UTC, time.FixedZone("", 0), time.FixedZone("X", -1800)}
	when := func() time.Time {
		switch r.IntN(6) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(r.Int64N(1<<40)-1<<39, 0).In(zones[r.IntN(len(zones))])
		}
		return time.Unix(0, r.Int64()-math.MaxInt64/2).In(zones[r.IntN(len(zones))])
	}
	fast := 0
	const n = 5000
	for range n {
		k := wire.Key{
			ID: str(), Organization: str(), Name: str(), Description: str(), Tags: strs(),
			Usage: str(), Algorithm: str(), Origin: str(), State: str(), Protected: r.IntN(2) == 0,
			RotationPolicy: wire.RotationPolicy{RotationPeriod: str(), NextRotationAt: when()},
			CurrentVersion: r.Uint32() >> r.IntN(32), PrimaryZone: str(), ReplicaZones: strs(),
			CreatedAt: when(), UpdatedAt: when(), DeletionAt: when(), Revision: r.Uint64() >> r.IntN(64),
			PendingZones: strs(), ReplicaSeq: r.Uint64() >> r.IntN(64),
		}
		if r.IntN(2) == 0 {
			k.PendingVersion = r.Uint32() >> r.IntN(32)
		}
		if checkAppendKey(t, k) {
			fast++
		}
	}
	t.Logf("%d of %d keys encoded without encoding/json", fast, n)
	// The property is only tested if both paths are taken.
	if fast < n/20 || fast > n-n/20 {
		t.Fatalf("%d of %d keys encoded without encoding/json: the generator no longer exercises both paths", fast, n)
	}
}

// renderKey answers exactly as c.JSON did: status, headers and body.
func TestRespondJSONStatus_MatchesGin(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, status := range []int{200, 201} {
		for _, name := range []string{"plain", "<escaped>"} {
			k := sampleWireKey()
			k.Name = name

			want := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(want)
			c.JSON(status, k)

			got := httptest.NewRecorder()
			c, _ = gin.CreateTestContext(got)
			respondJSONStatus(c, status, k, appendKey)

			if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Errorf("%d %q:\n got %d %v %s\nwant %d %v %s", status, name, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
		}
	}
}

// BenchmarkKeyJSON encodes the answer of a key creation by hand and by
// json.Marshal (what c.JSON did).
func BenchmarkKeyJSON(b *testing.B) {
	k := sampleWireKey()
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			if _, ok := appendKey(buf[:0], k); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(k); err != nil {
				b.Fatal(err)
			}
		}
	})
}
