package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// reflectJSON is the event's JSON as encoding/json writes it: the shape
// AppendJSON must match byte for byte.
func reflectJSON(t testing.TB, e Event) []byte {
	t.Helper()
	type plain Event
	b, err := json.Marshal(struct {
		Time string `json:"time"`
		plain
		DurationMS float64 `json:"duration_ms"`
	}{e.Time.UTC().Format(time.RFC3339Nano), plain(e), float64(e.Duration.Microseconds()) / 1000})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendJSON_MatchesEncodingJSON(t *testing.T) {
	full := event(1)
	odd := Event{
		Time: time.Unix(0, 0), RequestID: "a\"b\\c", Node: "n\x00\x1f", Zone: "<z>&", Method: "GET",
		Organization: "\u2028\u2029", TokenID: "\xff\xfe", Role: "é", Operation: "op\n\r\t\b\f",
		Route: "/v1/x", Status: 0, Outcome: "", Source: "", Duration: 123456789 * time.Nanosecond,
	}
	for name, e := range map[string]Event{"full": full, "zero": {}, "odd strings": odd} {
		if got, want := e.AppendJSON(nil), reflectJSON(t, e); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"", "abc", "\"\\", "<>&", "\u2028", "\xff", "é\x00", "a\u2029b\xc3"} {
		f.Add(s, s+"x", uint32(len(s)), int64(len(s))*1000)
	}
	f.Fuzz(func(t *testing.T, a, b string, v uint32, d int64) {
		e := Event{RequestID: a, Route: b, KeyID: b, Code: a, KeyVersion: v, Duration: time.Duration(d), Time: time.Unix(0, d)}
		if got, want := e.AppendJSON(nil), reflectJSON(t, e); !bytes.Equal(got, want) {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
}
