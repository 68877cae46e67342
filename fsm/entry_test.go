package fsm

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// entrySeeds are log entries as Encode writes them, and forms of them
// that only encoding/json reads, or that it reads differently from a
// naive cut.
func entrySeeds(t testing.TB) [][]byte {
	t.Helper()
	enc := func(typ CommandType, payload any) []byte {
		c, err := NewCommand(typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	create := enc(CmdCreateKey, createKey("k1", "org-a"))
	return [][]byte{
		create,
		enc(CmdRotateKey, rotate("k1", "org-a", 2, t0)),
		enc(CmdPurgeKey, PurgeKeyV1{KeyID: "k1", Now: t0}),
		enc(IgnorableCommandFlag|77, map[string]int{"x": 1}),
		// A second "type" after the payload: encoding/json takes the last.
		[]byte(`{"type":1,"version":1,"payload":{"id":"k"},"type":10}`),
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1","now":1},"type":32845}`),
		[]byte(`{"type":10,"version":2,"payload":{"key_id":"k1"}}`),
		[]byte(`{"type":010,"version":1,"payload":{"key_id":"k1"}}`),
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1"}}` + "\n"),
		[]byte(`{"type":10, "version":1,"payload":{"key_id":"k1"}}`),
		[]byte(`{"type":65546,"version":1,"payload":{}}`),
		[]byte(`{"type":10,"version":1,"payload":}`),
		[]byte(`{"type":10,"version":1,"payload":null}`),
		[]byte(`{"type":10,"version":1,"payload": null}`),
		[]byte(`{"type":10,"version":1,"payload":null }`),
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1"} }`),
		[]byte(`{"type":10,"version":1,"payload": {"key_id":"k1"}}`),
		// Nested just deep enough for encoding/json to refuse the entry,
		// not the payload alone.
		[]byte(`{"type":10,"version":1,"payload":{"key_id":"k1","x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`),
		bytes.TrimSuffix(create, []byte("}")),
	}
}

// decodeEntryJSON is what Apply did before decodeEntry: encoding/json
// for the envelope, then the payload.
func decodeEntryJSON(b []byte) (Command, error) {
	cmd, err := DecodeCommand(b)
	if err != nil {
		return Command{}, err
	}
	_, err = decodePayload(cmd)
	return cmd, err
}

// FuzzDecodeEntry: decodeEntry accepts exactly the entries encoding/json
// and decodePayload accept, and reads the same command from them.
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range entrySeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := decodeEntryJSON(b)
		got, _, gotErr := decodeEntry(b)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: decodeEntry error %v, encoding/json's %v", b, gotErr, wantErr)
		}
		if wantErr == nil && (got.Type != want.Type || got.Version != want.Version || !bytes.Equal(got.Payload, want.Payload)) {
			t.Fatalf("%q: decodeEntry read %d/%d %q, encoding/json %d/%d %q", b, got.Type, got.Version, got.Payload, want.Type, want.Version, want.Payload)
		}
	})
}

// TestDecodeEntry_EncodedCommandsTakeTheFastPath: what Encode writes is
// cut without encoding/json (else the fast path silently serves nothing).
func TestDecodeEntry_EncodedCommandsTakeTheFastPath(t *testing.T) {
	for _, b := range entrySeeds(t)[:3] {
		c, ok := decodeCommandFast(b)
		if !ok {
			t.Fatalf("%q: not cut", b)
		}
		want, err := DecodeCommand(b)
		if err != nil || c.Type != want.Type || c.Version != want.Version || !bytes.Equal(c.Payload, want.Payload) {
			t.Fatalf("%q: cut into %d/%d %q, want %d/%d %q (%v)", b, c.Type, c.Version, c.Payload, want.Type, want.Version, want.Payload, err)
		}
	}
}

// TestEncode_AsJSONMarshal: Encode writes the bytes json.Marshal writes,
// for commands NewCommand made and for others.
func TestEncode_AsJSONMarshal(t *testing.T) {
	payloads := []struct {
		typ CommandType
		p   any
	}{
		{CmdCreateKey, createKey("k1", "org-a")},
		{CmdRotateKey, rotate("k1", "org-a", 2, t0)},
		{CmdUpdateKey, UpdateKeyV1{KeyRefV1: ref("k1", "org-a", t0), Description: ptr("<b>& café</b>")}},
		{IgnorableCommandFlag | 77, map[string]int{"x": 1}},
	}
	for _, tc := range payloads {
		c, err := NewCommand(tc.typ, tc.p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Encode wrote %s, json.Marshal %s", got, want)
		}
	}
	// A payload not made by NewCommand is compacted, as before.
	c := Command{Type: CmdPurgeKey, Version: CommandVersion1, Payload: json.RawMessage(`{ "key_id": "k1" }`)}
	got, err := c.Encode()
	if err != nil || string(got) != `{"type":10,"version":1,"payload":{"key_id":"k1"}}` {
		t.Errorf("Encode of a spaced payload: %s, %v", got, err)
	}
}
