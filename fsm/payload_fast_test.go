package fsm

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomCreateKey is a CreateKeyV1 with every field drawn at random,
// strings of the characters json.Marshal writes as they are.
func randomCreateKey(rng *rand.Rand) CreateKeyV1 {
	const chars = "abcXYZ019 -_.:/=+()[]{}!?#$%*~@"
	str := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		return string(b)
	}
	strs := func() []string {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+rng.IntN(3))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	num := func() int64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MinInt64 + rng.Int64N(10)
		case 2:
			return math.MaxInt64 - rng.Int64N(10)
		}
		return rng.Int64() - rng.Int64()
	}
	p := CreateKeyV1{
		ID: str(), Organization: str(), Name: str(), Description: str(), Tags: strs(),
		Usage: str(), Algorithm: str(), Origin: str(), Protected: rng.IntN(2) == 0,
		RotationPolicy: RotationPolicy{Period: num(), NextRotationAt: num()},
		PrimaryZone:    str(), ReplicaZones: strs(),
		FirstVersion: Version{Number: rng.Uint32(), RekID: str(), CreatedAt: num(), State: VersionState(str())},
		Now:          num(),
	}
	switch rng.IntN(3) {
	case 0:
		p.FirstVersion.Wrapped = []byte{}
	case 1:
		p.FirstVersion.Wrapped = make([]byte, rng.IntN(80))
		for i := range p.FirstVersion.Wrapped {
			p.FirstVersion.Wrapped[i] = byte(rng.Uint32())
		}
	}
	if rng.IntN(2) == 0 {
		p.Idempotency.Token = str()
	}
	if rng.IntN(2) == 0 {
		p.Idempotency.ExpiresAt = num()
	}
	return p
}

// TestCutCreateKey_ReadsWhatJSONMarshalWrites: the payloads proposers
// write (json.Marshal of a CreateKeyV1) are read by hand, into the value
// encoding/json reads from them.
func TestCutCreateKey_ReadsWhatJSONMarshalWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 5000 {
		p := randomCreateKey(rng)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := cutCreateKey(b)
		if !ok {
			t.Fatalf("case %d: %s not read by hand", i, b)
		}
		var want CreateKeyV1
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("case %d: %s read as\n%#v\nencoding/json reads\n%#v", i, b, *got, want)
		}
	}
	// And a real proposer's payload, with its HTML-escaped or non-ASCII
	// text left to encoding/json.
	b, _ := json.Marshal(createKey("k1", "org-a"))
	if _, ok := cutCreateKey(b); !ok {
		t.Fatalf("%s not read by hand", b)
	}
	p := createKey("k1", "org-a")
	p.Description = "<b>café</b>"
	b, _ = json.Marshal(p)
	if _, ok := cutCreateKey(b); ok {
		t.Fatalf("%s read by hand", b)
	}
}

// FuzzCutCreateKey: whatever cutCreateKey reads, encoding/json reads too,
// into the same value.
func FuzzCutCreateKey(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 20 {
		b, _ := json.Marshal(randomCreateKey(rng))
		f.Add(b)
	}
	b, _ := json.Marshal(createKey("k1", "org-a"))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := cutCreateKey(b)
		if !ok {
			return
		}
		var want CreateKeyV1
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%q read by hand, refused by encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%q read as\n%#v\nencoding/json reads\n%#v", b, *got, want)
		}
	})
}
