package fsm

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
)

// decodeCreateKey decodes a CmdCreateKey payload: by hand when it is in
// the form json.Marshal writes, else with encoding/json. Every node
// decodes every creation, and encoding/json's reflection was a tenth of
// a creation's CPU over a zone.
func decodeCreateKey(raw json.RawMessage) (applyFunc, error) {
	if p, ok := cutCreateKey(raw); ok {
		return func(s *state, index uint64) Result { return applyCreateKey(s, index, p) }, nil
	}
	return binder(applyCreateKey)(raw)
}

// cutCreateKey reads a CreateKeyV1 written by json.Marshal: its fields in
// order, strings of printable ASCII without escapes, integers in plain
// decimal. It declines (false) anything else, which encoding/json then
// reads, so that it never reads a value encoding/json would refuse or
// read differently (FuzzCutCreateKey checks both).
func cutCreateKey(b []byte) (*CreateKeyV1, bool) {
	c := cutter{b: b, ok: true}
	p := new(CreateKeyV1)
	c.lit(`{"id":`)
	p.ID = c.str()
	c.lit(`,"organization":`)
	p.Organization = c.str()
	c.lit(`,"name":`)
	p.Name = c.str()
	c.lit(`,"description":`)
	p.Description = c.str()
	c.lit(`,"tags":`)
	p.Tags = c.strs()
	c.lit(`,"usage":`)
	p.Usage = c.str()
	c.lit(`,"algorithm":`)
	p.Algorithm = c.str()
	c.lit(`,"origin":`)
	p.Origin = c.str()
	c.lit(`,"protected":`)
	p.Protected = c.bool()
	c.lit(`,"rotation_policy":{"period":`)
	p.RotationPolicy.Period = c.int64()
	c.lit(`,"next_rotation_at":`)
	p.RotationPolicy.NextRotationAt = c.int64()
	c.lit(`},"primary_zone":`)
	p.PrimaryZone = c.str()
	c.lit(`,"replica_zones":`)
	p.ReplicaZones = c.strs()
	c.lit(`,"first_version":{"number":`)
	p.FirstVersion.Number = c.uint32()
	if c.opt(`,"wrapped":`) {
		p.FirstVersion.Wrapped = c.base64()
	}
	c.lit(`,"rek_id":`)
	p.FirstVersion.RekID = c.str()
	c.lit(`,"created_at":`)
	p.FirstVersion.CreatedAt = c.int64()
	c.lit(`,"state":`)
	p.FirstVersion.State = VersionState(c.str())
	c.lit(`},"now":`)
	p.Now = c.int64()
	c.lit(`,"idempotency":{`)
	if c.opt(`"token":`) {
		p.Idempotency.Token = c.str()
		if c.opt(`,"expires_at":`) {
			p.Idempotency.ExpiresAt = c.int64()
		}
	} else if c.opt(`"expires_at":`) {
		p.Idempotency.ExpiresAt = c.int64()
	}
	c.lit(`}}`)
	if !c.ok || len(c.b) != 0 {
		return nil, false
	}
	return p, true
}

// cutter reads JSON of one known shape from the front of b; ok turns
// false at the first byte it does not expect, and stays false.
type cutter struct {
	b  []byte
	ok bool
}

// lit takes s.
func (c *cutter) lit(s string) {
	if !c.opt(s) {
		c.ok = false
	}
}

// opt takes s if b starts with it.
func (c *cutter) opt(s string) bool {
	if !c.ok || len(c.b) < len(s) || string(c.b[:len(s)]) != s {
		return false
	}
	c.b = c.b[len(s):]
	return true
}

// str takes a string of printable ASCII other than '"' and '\\'.
func (c *cutter) str() string {
	if !c.ok || len(c.b) == 0 || c.b[0] != '"' {
		c.ok = false
		return ""
	}
	for i := 1; i < len(c.b); i++ {
		switch ch := c.b[i]; {
		case ch == '"':
			s := string(c.b[1:i])
			c.b = c.b[i+1:]
			return s
		case ch < 0x20 || ch > 0x7e || ch == '\\':
			c.ok = false
			return ""
		}
	}
	c.ok = false
	return ""
}

// strs takes null (nil) or an array of strings (never nil, as
// encoding/json makes [] an empty slice).
func (c *cutter) strs() []string {
	if c.opt("null") {
		return nil
	}
	c.lit("[")
	out := []string{}
	if c.opt("]") {
		return out
	}
	for c.ok {
		out = append(out, c.str())
		if c.opt("]") {
			return out
		}
		c.lit(",")
	}
	return nil
}

func (c *cutter) bool() bool {
	if c.opt("true") {
		return true
	}
	c.lit("false")
	return false
}

// number takes an integer as encoding/json writes one: an optional '-',
// then 0 or a digit 1-9 and more digits. Fractions and exponents are
// declined.
func (c *cutter) number() []byte {
	if !c.ok {
		return nil
	}
	i := 0
	if i < len(c.b) && c.b[i] == '-' {
		i++
	}
	start := i
	for i < len(c.b) && c.b[i] >= '0' && c.b[i] <= '9' {
		i++
	}
	if i == start || (c.b[start] == '0' && i > start+1) ||
		(i < len(c.b) && (c.b[i] == '.' || c.b[i] == 'e' || c.b[i] == 'E')) {
		c.ok = false
		return nil
	}
	n := c.b[:i]
	c.b = c.b[i:]
	return n
}

func (c *cutter) int64() int64 {
	n, err := strconv.ParseInt(string(c.number()), 10, 64)
	if err != nil {
		c.ok = false
	}
	return n
}

func (c *cutter) uint32() uint32 {
	n, err := strconv.ParseUint(string(c.number()), 10, 32)
	if err != nil {
		c.ok = false
	}
	return uint32(n)
}

// base64 takes a string of standard base64 as encoding/json decodes a
// []byte: into a slice of the decoded length.
func (c *cutter) base64() []byte {
	s := c.str()
	if !c.ok {
		return nil
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, []byte(s))
	if err != nil {
		c.ok = false
		return nil
	}
	return b[:n]
}
