package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var testMACKey = bytes.Repeat([]byte{7}, 32)

func testMeta(state []byte) Meta {
	sum := sha256.Sum256(state)
	return Meta{
		CreatedAt: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), Zone: "zone-a", NodeID: "a1", RekID: "rek-1",
		Index: 42, Term: 3, StateFormat: 1, StateSize: int64(len(state)), StateSHA256: hex.EncodeToString(sum[:]), Keys: 2,
	}
}

func archive(t *testing.T, state []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, testMeta(state), bytes.NewReader(state), testMACKey); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestArchive_RoundTrip(t *testing.T) {
	state := []byte(strings.Repeat(`{"type":"key"}`+"\n", 1000))
	var out bytes.Buffer
	meta, err := Read(bytes.NewReader(archive(t, state)), &out, ReadOptions{MACKey: testMACKey})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), state) {
		t.Fatal("state differs after the round trip")
	}
	want := testMeta(state)
	want.Format = Format
	if meta != want {
		t.Fatalf("meta = %+v, want %+v", meta, want)
	}
	// Without the MAC key only the checksums are checked, and pass.
	if _, err := Read(bytes.NewReader(archive(t, state)), io.Discard, ReadOptions{}); err != nil {
		t.Fatal(err)
	}
}

// rewrite unpacks an archive, lets edit change its files, and packs it
// again, so tests can tamper inside a well-formed container.
func rewrite(t *testing.T, a []byte, edit func(files map[string][]byte) []string) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
		order = append(order, h.Name)
	}
	if o := edit(files); o != nil {
		order = o
	}
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	for _, name := range order {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(files[name])), Typeflag: tar.TypeReg})
		tw.Write(files[name])
	}
	tw.Close()
	gw.Close()
	return buf.Bytes()
}

func TestArchive_RefusesDamage(t *testing.T) {
	state := []byte(`{"type":"header"}` + "\n" + `{"type":"end"}` + "\n")
	good := archive(t, state)
	sumLine := func(b []byte, name string) string {
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:]) + "  " + name + "\n"
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":            {nil, "not gzip"},
		"not gzip":         {[]byte("hello"), "not gzip"},
		"truncated":        {good[:len(good)/2], "truncated"},
		"gzip trailer cut": {good[:len(good)-4], "truncated"},
		"state flipped": {rewrite(t, good, func(f map[string][]byte) []string {
			f[StateFile][3] ^= 1
			return nil
		}), "checksum of state.ndjson does not match SHA256SUMS"},
		"meta edited": {rewrite(t, good, func(f map[string][]byte) []string {
			f[MetaFile] = bytes.Replace(f[MetaFile], []byte(`"index": 42`), []byte(`"index": 43`), 1)
			return nil
		}), "checksum of meta.json does not match"},
		"sums recomputed after a change": {rewrite(t, good, func(f map[string][]byte) []string {
			f[StateFile] = bytes.Replace(f[StateFile], []byte("header"), []byte("HEADER"), 1)
			f[MetaFile] = bytes.Replace(f[MetaFile], []byte(testMeta(state).StateSHA256), []byte(hex.EncodeToString(sha(f[StateFile]))), 1)
			f[SumsFile] = []byte(sumLine(f[MetaFile], MetaFile) + sumLine(f[StateFile], StateFile))
			return nil
		}), "authentication failed"},
		"missing mac": {rewrite(t, good, func(f map[string][]byte) []string {
			return []string{MetaFile, StateFile, SumsFile}
		}), "truncated before the end of SHA256SUMS.mac"},
		"files reordered": {rewrite(t, good, func(f map[string][]byte) []string {
			return []string{StateFile, MetaFile, SumsFile, MACFile}
		}), "expected meta.json"},
		"extra file": {rewrite(t, good, func(f map[string][]byte) []string {
			f["x"] = []byte("x")
			return []string{MetaFile, StateFile, SumsFile, MACFile, "x"}
		}), "unexpected content"},
		"future format": {rewrite(t, good, func(f map[string][]byte) []string {
			f[MetaFile] = bytes.Replace(f[MetaFile], []byte(`"format": 1`), []byte(`"format": 9`), 1)
			return nil
		}), "archive format 9"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.data), io.Discard, ReadOptions{MACKey: testMACKey})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func TestArchive_OtherMACKeyRefused(t *testing.T) {
	a := archive(t, []byte("state\n"))
	_, err := Read(bytes.NewReader(a), io.Discard, ReadOptions{MACKey: bytes.Repeat([]byte{8}, 32)})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("err = %v", err)
	}
}

func TestArchive_CheckMetaAndLimit(t *testing.T) {
	a := archive(t, []byte(strings.Repeat("x", 100)))
	refuse := errors.New("wrong zone")
	if _, err := Read(bytes.NewReader(a), io.Discard, ReadOptions{CheckMeta: func(m Meta) error {
		if m.Zone != "zone-b" {
			return refuse
		}
		return nil
	}}); !errors.Is(err, refuse) {
		t.Fatalf("err = %v, want the CheckMeta error", err)
	}
	if _, err := Read(bytes.NewReader(a), io.Discard, ReadOptions{MaxState: 99}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestWrite_StateMustMatchMeta(t *testing.T) {
	m := testMeta([]byte("abc"))
	if err := Write(io.Discard, m, strings.NewReader("abd"), testMACKey); err == nil {
		t.Fatal("a state that differs from its meta was archived")
	}
	if err := Write(io.Discard, m, strings.NewReader("ab"), testMACKey); err == nil {
		t.Fatal("a short state was archived")
	}
}
