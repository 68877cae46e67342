package api

import (
	"strconv"
	"time"

	"github.com/keyzone/keyzone/api/wire"
)

// A key is the answer of every key change and read, and encoding/json's
// reflection over its twenty fields cost more CPU per key creation than
// the cryptography behind it. appendKey writes what json.Marshal writes
// for the same wire.Key, byte for byte, and declines (false) any text
// that would need escaping or a time json.Marshal would refuse, leaving
// those keys to encoding/json.
func appendKey(b []byte, k wire.Key) ([]byte, bool) {
	w := objectWriter{b: append(b, '{'), ok: true}
	w.string("id", k.ID)
	w.string("organization", k.Organization)
	w.string("name", k.Name)
	w.string("description", k.Description)
	w.strings("tags", k.Tags)
	w.string("usage", k.Usage)
	w.string("algorithm", k.Algorithm)
	w.string("origin", k.Origin)
	w.string("state", k.State)
	w.bool("protected", k.Protected)
	w.open("rotation_policy")
	w.string("rotation_period", k.RotationPolicy.RotationPeriod)
	if !k.RotationPolicy.NextRotationAt.IsZero() { // omitzero
		w.time("next_rotation_at", k.RotationPolicy.NextRotationAt)
	}
	w.close()
	w.uint("current_version", uint64(k.CurrentVersion))
	w.string("primary_zone", k.PrimaryZone)
	w.strings("replica_zones", k.ReplicaZones)
	w.time("created_at", k.CreatedAt)
	w.time("updated_at", k.UpdatedAt)
	if !k.DeletionAt.IsZero() { // omitzero
		w.time("deletion_at", k.DeletionAt)
	}
	w.uint("revision", k.Revision)
	if k.PendingVersion != 0 { // omitempty
		w.uint("pending_version", uint64(k.PendingVersion))
	}
	if len(k.PendingZones) > 0 { // omitempty
		w.strings("pending_zones", k.PendingZones)
	}
	if k.ReplicaSeq != 0 { // omitempty
		w.uint("replica_seq", k.ReplicaSeq)
	}
	w.close()
	return w.b, w.ok
}

// objectWriter appends a JSON object's fields, with the commas between
// them. ok turns false, for good, at the first value it can't write as
// encoding/json would; the caller then leaves the value to encoding/json.
type objectWriter struct {
	b  []byte
	ok bool
	// more: the object being written has a field already.
	more bool
}

func (w *objectWriter) name(name string) {
	if w.more {
		w.b = append(w.b, ',')
	}
	w.more = true
	w.b = append(w.b, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, '"', ':')
}

// open starts a nested object; close ends it (or the outer one).
func (w *objectWriter) open(name string) {
	w.name(name)
	w.b = append(w.b, '{')
	w.more = false
}

func (w *objectWriter) close() {
	w.b = append(w.b, '}')
	w.more = true
}

func (w *objectWriter) string(name, s string) {
	if !plainJSON(s) {
		w.ok = false
		return
	}
	w.name(name)
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

// strings writes nil as null, as encoding/json does.
func (w *objectWriter) strings(name string, ss []string) {
	for _, s := range ss {
		if !plainJSON(s) {
			w.ok = false
			return
		}
	}
	w.name(name)
	if ss == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '[')
	for i, s := range ss {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, '"')
		w.b = append(w.b, s...)
		w.b = append(w.b, '"')
	}
	w.b = append(w.b, ']')
}

func (w *objectWriter) bool(name string, v bool) {
	w.name(name)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *objectWriter) uint(name string, v uint64) {
	w.name(name)
	w.b = strconv.AppendUint(w.b, v, 10)
}

// time writes RFC 3339 with nanoseconds, as time.Time's MarshalJSON does.
// It declines the years MarshalJSON refuses, and times not in UTC (some
// offsets it refuses too; keys' times are UTC).
func (w *objectWriter) time(name string, t time.Time) {
	if y := t.Year(); y < 0 || y > 9999 {
		w.ok = false
		return
	}
	if _, offset := t.Zone(); offset != 0 {
		w.ok = false
		return
	}
	w.name(name)
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}
