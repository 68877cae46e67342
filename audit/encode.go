package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e as the JSON object MarshalJSON writes, byte for
// byte, without reflection: every request of a node writes one, so the
// encoder is on the crypto path.
func (e Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "request_id", e.RequestID, false)
	b = appendField(b, "node", e.Node, false)
	b = appendField(b, "zone", e.Zone, false)
	b = appendField(b, "method", e.Method, false)
	b = appendField(b, "organization", e.Organization, true)
	b = appendField(b, "token_id", e.TokenID, true)
	b = appendField(b, "role", e.Role, true)
	b = appendField(b, "operation", e.Operation, false)
	b = appendField(b, "route", e.Route, false)
	b = appendField(b, "key_id", e.KeyID, true)
	if e.KeyVersion != 0 {
		b = append(b, `,"key_version":`...)
		b = strconv.AppendUint(b, uint64(e.KeyVersion), 10)
	}
	b = appendField(b, "subject_token_id", e.SubjectTokenID, true)
	b = appendField(b, "peer_id", e.PeerID, true)
	b = appendField(b, "target_zone", e.TargetZone, true)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = appendField(b, "outcome", e.Outcome, false)
	b = appendField(b, "code", e.Code, true)
	b = appendField(b, "source", e.Source, false)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.Duration.Microseconds())/1000, 'f', -1, 64)
	return append(b, '}')
}

func appendField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does: HTML-safe escapes for <, >
// and &, \u2028 and \u2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
