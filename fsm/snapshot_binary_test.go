package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"unsafe"
)

// frame builds a format-2 frame.
func frame(typ byte, payload []byte) []byte {
	return append(binary.AppendUvarint([]byte{typ}, uint64(len(payload))), payload...)
}

// payloadOf returns the payload of a frame.
func payloadOf(frame []byte) []byte {
	_, n := binary.Uvarint(frame[1:])
	return frame[1+n:]
}

// stream builds a format-2 stream of frames.
func stream(frames ...[]byte) []byte {
	return append([]byte(snapshotMagic+"\x02"), bytes.Join(frames, nil)...)
}

// keyUpToVersions is the payload of a key frame up to its list of
// versions, for a key k1 of orgA with every field before it zero.
func keyUpToVersions() []byte {
	b := appendString(appendString(nil, "k1"), orgA)
	b = appendString(appendString(b, ""), "")
	b = append(b, 0) // tags
	b = appendString(appendString(appendString(b, ""), ""), "")
	b = appendString(b, string(KeyStateEnabled))
	return append(b, 0, 0, 0) // flags, rotation period, next rotation
}

// Every cut of a stream is refused: at a frame boundary (the end record
// is missing or its counts do not match) and inside a frame.
func TestSnapshotBinary_RefusesEveryTruncation(t *testing.T) {
	format2, _ := richBytes(t)
	for n := range len(format2) {
		if _, err := readSnapshot(bytes.NewReader(format2[:n]), "zone-1"); err == nil {
			t.Fatalf("a stream cut at %d of %d bytes was accepted", n, len(format2))
		}
	}
	// Without one whole frame, the counts of the end record do not match.
	frames := splitFrames(t, format2)
	for i := 1; i < len(frames)-1; i++ {
		without := stream(append(append([][]byte{}, frames[:i]...), frames[i+1:]...)...)
		if _, err := readSnapshot(bytes.NewReader(without), "zone-1"); err == nil {
			t.Errorf("a stream without its frame %d (type %d) was accepted", i, frames[i][0])
		}
	}
}

func TestSnapshotBinary_RefusesMalformed(t *testing.T) {
	src := newFSM(t)
	mustApply(t, src, CmdCreateKey, withToken(createKey("k1", orgA), "tok", t0+day))
	mustApply(t, src, CmdCreateKey, createKey("k2", orgA))
	mustApply(t, src, CmdScheduleDeletion, scheduleDeletion("k2", orgA, t0, t0+hour))
	mustApply(t, src, CmdPurgeKey, PurgeKeyV1{KeyID: "k2", Now: t0 + hour})
	good := snapshotBytes(t, src)
	fr := splitFrames(t, good)
	// fr: header, key k1, tombstone k2, idempotency, end.
	header, key, tomb, idem, end := fr[0], fr[1], fr[2], fr[3], fr[4]
	if len(fr) != 5 || key[0] != frameKey || end[0] != frameEnd {
		t.Fatalf("unexpected frames %q", fr)
	}
	keyPayload := payloadOf(key)
	k1 := src.st.keys["k1"]
	withKey := func(edit func(k *Key)) []byte {
		c := k1.clone()
		edit(c)
		return frame(frameKey, appendKey(nil, c))
	}
	endWith := func(counts string) []byte { return frame(frameEnd, []byte(counts)) }

	tests := []struct {
		name string
		data []byte
	}{
		{"magic only", []byte(snapshotMagic + "\x02")},
		{"format 3", append([]byte(snapshotMagic+"\x03"), good[len(snapshotMagic)+1:]...)},
		{"no header", stream(key, tomb, idem, end)},
		{"header format 1", stream(frame(frameHeader, []byte(`{"format":1,"index":4,"term":1}`)), key, tomb, idem, end)},
		{"header unknown field", stream(frame(frameHeader, []byte(`{"format":2,"index":4,"term":1,"x":1}`)), key, tomb, idem, end)},
		{"two headers", stream(header, header, key, tomb, idem, end)},
		{"unknown frame type", stream(header, frame(99, nil), key, tomb, idem, end)},
		{"frame type zero", stream(header, frame(0, nil), key, tomb, idem, end)},
		{"duplicate key", stream(header, key, key, tomb, idem, end)},
		{"key and tombstone share id", stream(header, key, frame(frameTombstone, appendTombstone(nil, &Tombstone{ID: "k1"})), idem, end)},
		{"key without id", stream(header, withKey(func(k *Key) { k.ID = "" }), tomb, idem, end)},
		{"key without organization", stream(header, withKey(func(k *Key) { k.Organization = "" }), tomb, idem, end)},
		{"key in unknown state", stream(header, withKey(func(k *Key) { k.State = "weird" }), tomb, idem, end)},
		{"key with unknown flags", stream(header, frame(frameKey, bytes.Replace(keyPayload, []byte("enabled\x00"), []byte("enabled\x80"), 1)), tomb, idem, end)},
		{"key with a byte more", stream(header, frame(frameKey, append(bytes.Clone(keyPayload), 0)), tomb, idem, end)},
		{"key with a byte less", stream(header, frame(frameKey, keyPayload[:len(keyPayload)-1]), tomb, idem, end)},
		{"key's current version beyond 32 bits", stream(header, frame(frameKey, binary.AppendUvarint(append(keyUpToVersions(), 0), 1<<32)), tomb, idem, end)},
		{"key's version number beyond 32 bits", stream(header, frame(frameKey, binary.AppendUvarint(append(keyUpToVersions(), 2), 1<<32)), tomb, idem, end)},
		{"tombstone without id", stream(header, key, frame(frameTombstone, appendTombstone(nil, &Tombstone{Organization: orgA})), idem, end)},
		{"idempotency unknown field", stream(header, key, tomb, frame(frameIdempotency, []byte(`{"scope":"s","x":1}`)), end)},
		{"idempotency two values", stream(header, key, tomb, frame(frameIdempotency, append(bytes.Clone(payloadOf(idem)), " {}"...)), end)},
		{"idempotency not JSON", stream(header, key, tomb, frame(frameIdempotency, []byte{1, 2, 3}), end)},
		{"count mismatch", stream(header, key, tomb, idem, endWith(`{"keys":2,"tombstones":1,"idempotency":1}`))},
		{"end unknown count", stream(header, key, tomb, idem, endWith(`{"keys":1,"tombstones":1,"idempotency":1,"frogs":0}`))},
		{"data after end", append(bytes.Clone(good), 0)},
		{"end twice", append(bytes.Clone(good), end...)},
		{"change naming a key not read", stream(header, key, tomb, idem,
			frame(frameChange, append(appendString([]byte{1}, "k9"), changeLiveKey)), end)},
		{"change of unknown kind", stream(header, key, tomb, idem,
			frame(frameChange, append(appendString([]byte{1}, "k1"), 9)), end)},
		{"change beyond the change sequence", stream(header, key, tomb, idem,
			frame(frameChange, append(appendString([]byte{1}, "k1"), changeLiveKey)), end)},
		{"frame length beyond the stream", stream(header, key, tomb, idem, append(binary.AppendUvarint([]byte{frameEnd}, 100), "{}"...))},
		{"frame length overflows", stream(header, append([]byte{frameKey}, bytes.Repeat([]byte{0xff}, 11)...))},
		{"frame longer than any record", stream(header, binary.AppendUvarint([]byte{frameKey}, maxFrameSize+1))},
		{"string length beyond the record", stream(header, frame(frameKey, []byte{0x7f, 'k'}), tomb, idem, end)},
		{"list longer than the record", stream(header, frame(frameKey, binary.AppendUvarint(keyUpToVersions(), 1<<20)), tomb, idem, end)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.data, good) {
				t.Fatal("the case does not change the snapshot")
			}
			f := newFSM(t)
			mustApply(t, f, CmdCreateKey, createKey("mine", orgB))
			before := snapshotBytes(t, f)
			err := restoreBytes(f, tt.data)
			if err == nil {
				t.Fatal("Restore accepted a bad snapshot")
			}
			t.Log(err)
			if !bytes.Equal(snapshotBytes(t, f), before) || f.AppliedIndex() != 1 {
				t.Error("failed Restore changed the state")
			}
		})
	}
	// The pieces put back together are accepted.
	if err := restoreBytes(newFSM(t), stream(header, key, tomb, idem, end)); err != nil {
		t.Fatalf("good snapshot refused: %v", err)
	}
}

// A length that announces more than the stream holds costs no more
// memory than the bytes that are there.
func TestSnapshotBinary_CorruptLengthsAllocateLittle(t *testing.T) {
	format2, _ := richBytes(t)
	header := splitFrames(t, format2)[0]
	cases := map[string][]byte{
		"frame":    stream(header, binary.AppendUvarint([]byte{frameKey}, maxFrameSize), bytes.Repeat([]byte{1}, 1<<20)),
		"string":   stream(header, frame(frameKey, binary.AppendUvarint(nil, 1<<40))),
		"tags":     stream(header, frame(frameKey, binary.AppendUvarint(appendString(appendString(appendString(appendString(nil, "k1"), orgA), ""), ""), 1<<40))),
		"versions": stream(header, frame(frameKey, binary.AppendUvarint(keyUpToVersions(), 1<<40))),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := readSnapshot(bytes.NewReader(data), "zone-1")
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
			// A few times the bytes there are, not the 64 MiB announced.
			if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
				t.Errorf("reading %d bytes allocated %d", len(data), got)
			}
		})
	}
}

// Writing a key allocates nothing: the cost of a snapshot does not grow
// with the keys beyond the sorted list of their ids.
func TestSnapshotBinary_WriteAllocatesNothingPerKey(t *testing.T) {
	allocs := func(n int) float64 {
		s := &fsmSnapshot{keys: map[string]*Key{}, header: snapshotHeader{Format: SnapshotFormat}}
		for i := range n {
			id := fmt.Sprintf("k%05d", i)
			s.keys[id] = &Key{ID: id, Organization: orgA, State: KeyStateEnabled, Tags: []string{"a"},
				Versions: []Version{version(id, 1, t0)}, ReplicaZones: []string{}}
		}
		var sink countingSink
		return testing.AllocsPerRun(3, func() {
			if err := s.write(&sink); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(1000), allocs(4000)
	if large-small > 10 {
		t.Errorf("writing 1000 keys: %v allocations, 4000 keys: %v", small, large)
	}
}

// Reading a key allocates the key and its parts, little else: the strings
// of few values (organization, zones, tags, states...) are interned once.
func TestSnapshotBinary_ReadAllocatesLittlePerKey(t *testing.T) {
	const n = 2000
	f := newFSM(t)
	for i := range n {
		mustApply(t, f, CmdCreateKey, createKey(fmt.Sprintf("k%05d", i), orgA))
	}
	data := snapshotBytes(t, f)
	perKey := testing.AllocsPerRun(2, func() {
		if _, err := readSnapshot(bytes.NewReader(data), "zone-1"); err != nil {
			t.Fatal(err)
		}
	}) / n
	// The key, its id, name and description, tags, versions and wrapped
	// material, and its share of the maps and index.
	if perKey > 9 {
		t.Errorf("%.1f allocations per key", perKey)
	}
	t.Logf("%.1f allocations per key", perKey)
	st := readState(t, data)
	if a, b := st.keys["k00000"], st.keys["k00001"]; !sameString(a.Organization, b.Organization) || !sameString(a.Tags[0], b.Tags[0]) ||
		!sameString(a.Versions[0].RekID, b.Versions[0].RekID) || !sameString(a.PrimaryZone, b.PrimaryZone) {
		t.Error("strings of few values are not interned")
	}
}

// sameString reports whether a and b share their bytes.
func sameString(a, b string) bool {
	return a == b && unsafe.StringData(a) == unsafe.StringData(b)
}

func FuzzReadSnapshot(f *testing.F) {
	format2, format1 := richBytes(f)
	f.Add(format2)
	f.Add(format1)
	small := newFSM(f)
	mustApply(f, small, CmdCreateKey, createKey("k1", orgA))
	f.Add(snapshotBytes(f, small))
	f.Add([]byte(snapshotMagic + "\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := readSnapshot(bytes.NewReader(data), "zone-1")
		if err != nil {
			return
		}
		// What is accepted writes back to a stream that reads the same.
		g := newFSM(t)
		g.st = st
		again := readState(t, snapshotBytes(t, g))
		requireSameState(t, again, st)
	})
}
