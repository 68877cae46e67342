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
	var ok bool
	b = append(b, '{')
	if b, ok = appendStringField(b, "id", k.ID, false); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, "organization", k.Organization, true); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, "name", k.Name, true); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, "description", k.Description, true); !ok {
		return b, false
	}
	if b, ok = appendStringsField(b, "tags", k.Tags); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, "usage", k.Usage, true); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, "algorithm", k.Algorithm, true); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, "origin", k.Origin, true); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, "state", k.State, true); !ok {
		return b, false
	}
	b = append(b, `,"protected":`...)
	b = strconv.AppendBool(b, k.Protected)
	b = append(b, `,"rotation_policy":{`...)
	if b, ok = appendStringField(b, "rotation_period", k.RotationPolicy.RotationPeriod, false); !ok {
		return b, false
	}
	if !k.RotationPolicy.NextRotationAt.IsZero() { // omitzero
		if b, ok = appendTimeField(b, "next_rotation_at", k.RotationPolicy.NextRotationAt); !ok {
			return b, false
		}
	}
	b = append(b, `},"current_version":`...)
	b = strconv.AppendUint(b, uint64(k.CurrentVersion), 10)
	if b, ok = appendStringField(b, "primary_zone", k.PrimaryZone, true); !ok {
		return b, false
	}
	if b, ok = appendStringsField(b, "replica_zones", k.ReplicaZones); !ok {
		return b, false
	}
	if b, ok = appendTimeField(b, "created_at", k.CreatedAt); !ok {
		return b, false
	}
	if b, ok = appendTimeField(b, "updated_at", k.UpdatedAt); !ok {
		return b, false
	}
	if !k.DeletionAt.IsZero() { // omitzero
		if b, ok = appendTimeField(b, "deletion_at", k.DeletionAt); !ok {
			return b, false
		}
	}
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, k.Revision, 10)
	if k.PendingVersion != 0 { // omitempty
		b = append(b, `,"pending_version":`...)
		b = strconv.AppendUint(b, uint64(k.PendingVersion), 10)
	}
	if len(k.PendingZones) > 0 { // omitempty
		if b, ok = appendStringsField(b, "pending_zones", k.PendingZones); !ok {
			return b, false
		}
	}
	if k.ReplicaSeq != 0 { // omitempty
		b = append(b, `,"replica_seq":`...)
		b = strconv.AppendUint(b, k.ReplicaSeq, 10)
	}
	return append(b, '}'), true
}

// appendStringField appends "name":"s", after a comma unless it is the
// object's first field.
func appendStringField(b []byte, name, s string, comma bool) ([]byte, bool) {
	if !plainJSON(s) {
		return b, false
	}
	if comma {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = append(b, s...)
	return append(b, '"'), true
}

// appendStringsField appends ,"name":[...]; nil is null, as in
// encoding/json.
func appendStringsField(b []byte, name string, ss []string) ([]byte, bool) {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	if ss == nil {
		return append(b, "null"...), true
	}
	b = append(b, '[')
	for i, s := range ss {
		if !plainJSON(s) {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
	}
	return append(b, ']'), true
}

// appendTimeField appends ,"name":"<RFC 3339 with nanoseconds>", as
// time.Time's MarshalJSON writes it; it declines the years MarshalJSON
// refuses, and times not in UTC.
func appendTimeField(b []byte, name string, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, offset := t.Zone(); offset != 0 {
		return b, false // MarshalJSON refuses some offsets; keys' times are UTC
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}
