// Package snapshot reads and writes Keyzone's backup archive: a zone's
// state machine snapshot with what is needed to trust it again later.
//
// An archive is a gzip-compressed tar of four files, in this order:
//
//	meta.json        Meta: format, zone, root key id, Raft index and term
//	state.ndjson     the state machine snapshot, keys wrapped under the root key
//	SHA256SUMS       sha256sum(1) lines of the two files above
//	SHA256SUMS.mac   HMAC-SHA256 of SHA256SUMS under a key derived from the
//	                 root key (hex)
//
// Anyone can check the checksums (sha256sum -c after tar -x works); only a
// node holding the root key can check the MAC, which a modified archive
// whose checksums were recomputed fails.
package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Format is the archive format this package writes and reads.
const Format = 1

// File names inside the archive.
const (
	MetaFile  = "meta.json"
	StateFile = "state.ndjson"
	SumsFile  = "SHA256SUMS"
	MACFile   = "SHA256SUMS.mac"
)

// Limits on the small files, so a hostile archive can't make a reader
// buffer much.
const (
	maxMetaBytes = 64 << 10
	maxSumsBytes = 4 << 10
	maxMACBytes  = 1 << 10
)

// ErrInvalid marks an archive that is not a well-formed Keyzone snapshot or
// that fails a check; the wrapping error says which.
var ErrInvalid = errors.New("invalid snapshot")

// ErrTooLarge: the state in the archive is larger than the reader allows.
var ErrTooLarge = errors.New("snapshot state too large")

// Meta describes an archive.
type Meta struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	// Zone is the zone the snapshot was taken in ("" for a single-zone
	// deployment); a zone restores only its own snapshots.
	Zone   string `json:"zone,omitempty"`
	NodeID string `json:"node_id"`
	// RekID is the fingerprint of the root key that wraps every key
	// version in the state: a cluster with another root key can't use it.
	RekID string `json:"rek_id"`
	// Index and Term are the Raft position the state reflects.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// StateFormat is the state machine's snapshot format.
	StateFormat int    `json:"state_format"`
	StateSize   int64  `json:"state_size"`
	StateSHA256 string `json:"state_sha256"`
	Keys        int    `json:"keys"`
}

// Write writes an archive of the state read from state, whose length and
// SHA-256 must already be in meta (StateSize, StateSHA256): a state that
// does not match them fails. macKey authenticates the checksums.
func Write(w io.Writer, meta Meta, state io.Reader, macKey []byte) error {
	if len(macKey) == 0 {
		return errors.New("snapshot: no MAC key")
	}
	meta.Format = Format
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	metaJSON = append(metaJSON, '\n')
	metaSum := sha256.Sum256(metaJSON)
	sums := fmt.Sprintf("%x  %s\n%s  %s\n", metaSum, MetaFile, meta.StateSHA256, StateFile)
	mac := hex.EncodeToString(computeMAC(macKey, []byte(sums))) + "\n"

	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	mtime := meta.CreatedAt.UTC().Truncate(time.Second)
	if err := writeFile(tw, MetaFile, mtime, bytes.NewReader(metaJSON), int64(len(metaJSON))); err != nil {
		return err
	}
	h := sha256.New()
	if err := writeFile(tw, StateFile, mtime, io.TeeReader(state, h), meta.StateSize); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != meta.StateSHA256 {
		return fmt.Errorf("snapshot: state changed while archived (sha256 %s, expected %s)", got, meta.StateSHA256)
	}
	if err := writeFile(tw, SumsFile, mtime, strings.NewReader(sums), int64(len(sums))); err != nil {
		return err
	}
	if err := writeFile(tw, MACFile, mtime, strings.NewReader(mac), int64(len(mac))); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeFile(tw *tar.Writer, name string, mtime time.Time, r io.Reader, size int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("snapshot: write %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("snapshot: %s is %d bytes, expected %d", name, n, size)
	}
	return nil
}

// ReadOptions tell Read what to check.
type ReadOptions struct {
	// MACKey, when set, checks the archive's MAC: only a node holding the
	// root key has it. Without it only the checksums are checked.
	MACKey []byte
	// MaxState bounds the state's size in bytes; 0 means no bound.
	MaxState int64
	// CheckMeta, when set, is called with the metadata as soon as it is
	// read, before the state is: it refuses an archive early (wrong root
	// key, wrong zone) with its own error.
	CheckMeta func(Meta) error
}

// Read reads an archive from r, copies its state to state, and checks it:
// the file layout, the format, the checksums and, with opts.MACKey, the
// MAC. It returns the metadata. On any error the bytes written to state
// must be discarded.
func Read(r io.Reader, state io.Writer, opts ReadOptions) (Meta, error) {
	gz, err := gzip.NewReader(bufio.NewReader(r))
	if err != nil {
		return Meta{}, invalid("not a Keyzone snapshot (not gzip: %v)", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)

	metaJSON, err := readSmall(tr, MetaFile, maxMetaBytes)
	if err != nil {
		return Meta{}, err
	}
	var meta Meta
	dec := json.NewDecoder(bytes.NewReader(metaJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil {
		return Meta{}, invalid("%s: %v", MetaFile, err)
	}
	if meta.Format != Format {
		return Meta{}, invalid("archive format %d, this node reads format %d", meta.Format, Format)
	}
	if opts.CheckMeta != nil {
		if err := opts.CheckMeta(meta); err != nil {
			return Meta{}, err
		}
	}

	hdr, err := next(tr, StateFile)
	if err != nil {
		return Meta{}, err
	}
	if hdr.Size != meta.StateSize {
		return Meta{}, invalid("%s is %d bytes, %s says %d", StateFile, hdr.Size, MetaFile, meta.StateSize)
	}
	if opts.MaxState > 0 && hdr.Size > opts.MaxState {
		return Meta{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, hdr.Size, opts.MaxState)
	}
	stateHash := sha256.New()
	if _, err := io.Copy(io.MultiWriter(state, stateHash), tr); err != nil {
		return Meta{}, readError(StateFile, err)
	}

	sums, err := readSmall(tr, SumsFile, maxSumsBytes)
	if err != nil {
		return Meta{}, err
	}
	if err := checkSums(sums, map[string]hash.Hash{MetaFile: sumOf(metaJSON), StateFile: stateHash}); err != nil {
		return Meta{}, err
	}
	if got := hex.EncodeToString(stateHash.Sum(nil)); got != meta.StateSHA256 {
		return Meta{}, invalid("checksum of %s does not match %s", StateFile, MetaFile)
	}
	macHex, err := readSmall(tr, MACFile, maxMACBytes)
	if err != nil {
		return Meta{}, err
	}
	if opts.MACKey != nil {
		mac, err := hex.DecodeString(strings.TrimSpace(string(macHex)))
		if err != nil || !hmac.Equal(mac, computeMAC(opts.MACKey, sums)) {
			return Meta{}, invalid("authentication failed: the archive was modified, or made by a cluster with another root key")
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		if err != nil {
			return Meta{}, readError("the archive", err)
		}
		return Meta{}, invalid("unexpected content after %s", MACFile)
	}
	// The rest of the gzip stream holds its own checksum, which only
	// reading to its end checks.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return Meta{}, readError("the archive", err)
	}
	return meta, nil
}

func sumOf(b []byte) hash.Hash {
	h := sha256.New()
	h.Write(b)
	return h
}

// checkSums checks SHA256SUMS: exactly one line per file of want, each
// with that file's digest.
func checkSums(sums []byte, want map[string]hash.Hash) error {
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(string(sums), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		h, known := want[name]
		if !ok || !known || seen[name] {
			return invalid("malformed %s", SumsFile)
		}
		seen[name] = true
		if sum != hex.EncodeToString(h.Sum(nil)) {
			return invalid("checksum of %s does not match %s: the file is corrupt or was modified", name, SumsFile)
		}
	}
	if len(seen) != len(want) {
		return invalid("%s does not list every file", SumsFile)
	}
	return nil
}

// next reads the next header and requires it to be the regular file name.
func next(tr *tar.Reader, name string) (*tar.Header, error) {
	hdr, err := tr.Next()
	if err != nil {
		return nil, readError(name, err)
	}
	if hdr.Name != name || hdr.Typeflag != tar.TypeReg || hdr.Size < 0 {
		return nil, invalid("expected %s, found %q", name, hdr.Name)
	}
	return hdr, nil
}

func readSmall(tr *tar.Reader, name string, limit int64) ([]byte, error) {
	hdr, err := next(tr, name)
	if err != nil {
		return nil, err
	}
	if hdr.Size > limit {
		return nil, invalid("%s is %d bytes, at most %d", name, hdr.Size, limit)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, readError(name, err)
	}
	return b, nil
}

// readError tells a truncated or corrupt stream from the reader's own
// failure (a closed connection, a full disk), which is not the archive's.
func readError(name string, err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("truncated before the end of %s", name)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return invalid("corrupt archive at %s: %v", name, err)
	}
	if _, ok := errors.AsType[flate.CorruptInputError](err); ok {
		return invalid("corrupt archive at %s: %v", name, err)
	}
	return fmt.Errorf("snapshot: read %s: %w", name, err)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// macLabel separates the MAC key from any other use of the key it is
// derived from.
const macLabel = "keyzone/v1/snapshot-mac"

func computeMAC(key, sums []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macLabel))
	m.Write(sums)
	return m.Sum(nil)
}
