package fsm

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// Format 2 of the snapshot stream: the magic prefix and the format byte,
// then frames of a type byte, the uvarint length of the payload, and the
// payload, in the order of format 1: header, keys by id, tombstones by
// id, idempotency records by scope, change log entries by sequence,
// replication progress by zone, removed nodes by id, import parameters by
// key id, organizations by id, tokens by id, end.
//
// Keys and tombstones, the bulk of a large state, have a binary payload
// (appendKey, appendTombstone), as have change entries, which mostly
// point at the key record of the same id. The other records are few, and
// their payload is the JSON of format 1's record body. The header and the
// end record are JSON too, so that their fields grow the way format 1's
// do (omitted when zero).
const (
	// snapshotMagic starts a format-2 stream; the format byte follows.
	// The NUL makes it something no JSON document (format 1) starts with.
	snapshotMagic = "KZSNAP\x00"

	snapshotBufferSize = 256 << 10

	// maxFrameSize bounds a frame's payload, one record: a key with ten
	// thousand versions takes about a megabyte. Persist refuses a record
	// beyond it rather than write a snapshot Restore would refuse.
	maxFrameSize = 64 << 20

	// maxInterned bounds the table of strings a reader has interned, so
	// that a stream of distinct strings does not grow it without end.
	maxInterned = 1 << 16

	// maxPrealloc bounds the elements allocated ahead for a list whose
	// length a stream announces: longer lists grow as their elements
	// decode, so a corrupt length costs no more than the bytes behind it.
	maxPrealloc = 64
)

// Frame types. They are part of the format: never renumbered.
const (
	frameHeader       byte = 1
	frameKey          byte = 2
	frameTombstone    byte = 3
	frameIdempotency  byte = 4
	frameChange       byte = 5
	frameReplication  byte = 6
	frameRemovedNode  byte = 7
	frameImport       byte = 8
	frameOrganization byte = 9
	frameToken        byte = 10
	frameEnd          byte = 11
)

// What a change frame holds after the entry's sequence and key id.
const (
	// changeLiveKey: the entry holds the key of the key frame with the
	// same id (the same revision); nothing follows. Most entries are the
	// newest state of a live key, and Restore shares it anyway.
	changeLiveKey byte = 1
	changeKey     byte = 2 // a key, as in a key frame
	changeTomb    byte = 3 // a tombstone, as in a tombstone frame
	changeOrg     byte = 4 // an organization, as JSON
	changeToken   byte = 5 // a token, as JSON
)

// Flags of a key's booleans.
const (
	keyProtected byte = 1 << iota
	keyDefault
	keyFlags = keyProtected | keyDefault
)

// write writes the snapshot in format 2.
func (s *fsmSnapshot) write(w io.Writer) error {
	sw, err := newSnapshotWriter(w, s.header)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(s.keys) {
		sw.buf = appendKey(sw.buf[:0], k.key)
		if err := sw.frame(frameKey, sw.buf); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.tombstones)) {
		t := s.tombstones[id]
		sw.buf = appendTombstone(sw.buf[:0], &t)
		if err := sw.frame(frameTombstone, sw.buf); err != nil {
			return err
		}
	}
	for _, scope := range slices.Sorted(maps.Keys(s.idem)) {
		if err := sw.jsonFrame(frameIdempotency, s.idem[scope]); err != nil {
			return err
		}
	}
	changes := slices.SortedFunc(maps.Values(s.changes), func(a, b ChangeEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	for i := range changes {
		if err := sw.change(&changes[i], s.keys); err != nil {
			return err
		}
	}
	for _, z := range slices.Sorted(maps.Keys(s.repl)) {
		if err := sw.jsonFrame(frameReplication, s.repl[z]); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.removed)) {
		if err := sw.jsonFrame(frameRemovedNode, s.removed[id]); err != nil {
			return err
		}
	}
	if err := writeImports(sw, s.imports); err != nil {
		return err
	}
	if err := writeTenancy(sw, s.orgs, s.tokens); err != nil {
		return err
	}
	if err := sw.jsonFrame(frameEnd, s.counts()); err != nil {
		return err
	}
	return sw.bw.Flush()
}

// idKey is a key beside its id, which sorting compares without a
// pointer to follow.
type idKey struct {
	id  string
	key *Key
}

// sortedKeys returns the keys sorted by id. Keys are the bulk of a large
// state: sorting them with their pointers, rather than their ids to look
// up again, saves a map access per key.
func sortedKeys(m map[string]*Key) []idKey {
	keys := make([]idKey, 0, len(m))
	for id, k := range m {
		keys = append(keys, idKey{id, k})
	}
	slices.SortFunc(keys, func(a, b idKey) int { return strings.Compare(a.id, b.id) })
	return keys
}

// snapshotWriter writes frames through a buffer, building each payload
// in buffers it reuses, so that a key costs no allocation.
type snapshotWriter struct {
	bw   *bufio.Writer
	buf  []byte // the payload being built
	head [1 + binary.MaxVarintLen64]byte
	js   bytes.Buffer // JSON encodings
	enc  *json.Encoder
}

// newSnapshotWriter writes the magic prefix, the format and the header.
func newSnapshotWriter(w io.Writer, h snapshotHeader) (*snapshotWriter, error) {
	sw := &snapshotWriter{bw: bufio.NewWriterSize(w, snapshotBufferSize), buf: make([]byte, 0, 4<<10)}
	sw.enc = json.NewEncoder(&sw.js)
	if _, err := sw.bw.WriteString(snapshotMagic); err != nil {
		return nil, err
	}
	if err := sw.bw.WriteByte(SnapshotFormat); err != nil {
		return nil, err
	}
	h.Format = SnapshotFormat
	return sw, sw.jsonFrame(frameHeader, h)
}

func (w *snapshotWriter) frame(typ byte, payload []byte) error {
	if len(payload) > maxFrameSize {
		return fmt.Errorf("a record of %d bytes exceeds the %d a snapshot frame holds", len(payload), maxFrameSize)
	}
	w.head[0] = typ
	n := 1 + binary.PutUvarint(w.head[1:], uint64(len(payload)))
	if _, err := w.bw.Write(w.head[:n]); err != nil {
		return err
	}
	_, err := w.bw.Write(payload)
	return err
}

// jsonFrame writes a frame whose payload is v's JSON.
func (w *snapshotWriter) jsonFrame(typ byte, v any) error {
	var err error
	if w.buf, err = w.appendJSON(w.buf[:0], v); err != nil {
		return err
	}
	return w.frame(typ, w.buf)
}

func (w *snapshotWriter) appendJSON(b []byte, v any) ([]byte, error) {
	w.js.Reset()
	if err := w.enc.Encode(v); err != nil {
		return b, err
	}
	return append(b, bytes.TrimSuffix(w.js.Bytes(), []byte("\n"))...), nil
}

// change writes a change log entry. An entry whose key has the revision
// of the live key of its id names it rather than repeat it: Restore
// would share the live key anyway.
func (w *snapshotWriter) change(e *ChangeEntry, live map[string]*Key) error {
	b := binary.AppendUvarint(w.buf[:0], e.Seq)
	b = appendString(b, e.KeyID)
	var err error
	switch {
	case e.Key != nil:
		if k, ok := live[e.KeyID]; ok && k.Revision == e.Key.Revision {
			b = append(b, changeLiveKey)
		} else {
			b = appendKey(append(b, changeKey), e.Key)
		}
	case e.Tombstone != nil:
		b = appendTombstone(append(b, changeTomb), e.Tombstone)
	case e.Organization != nil:
		b, err = w.appendJSON(append(b, changeOrg), e.Organization)
	case e.Token != nil:
		b, err = w.appendJSON(append(b, changeToken), e.Token)
	default:
		err = fmt.Errorf("change entry %d of %q holds nothing", e.Seq, e.KeyID)
	}
	w.buf = b
	if err != nil {
		return err
	}
	return w.frame(frameChange, b)
}

// appendKey encodes every field of k in the order Key declares them. The
// lists that JSON writes as null or [] keep that difference (a length
// plus one, 0 for nil); those it omits when empty (PendingZones, a
// version's Wrapped) decode as nil when empty, as they do from JSON.
func appendKey(b []byte, k *Key) []byte {
	b = appendString(b, k.ID)
	b = appendString(b, k.Organization)
	b = appendString(b, k.Name)
	b = appendString(b, k.Description)
	b = appendStrings(b, k.Tags)
	b = appendString(b, k.Usage)
	b = appendString(b, k.Algorithm)
	b = appendString(b, k.Origin)
	b = appendString(b, string(k.State))
	var flags byte
	if k.Protected {
		flags |= keyProtected
	}
	if k.Default {
		flags |= keyDefault
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, k.RotationPolicy.Period)
	b = binary.AppendVarint(b, k.RotationPolicy.NextRotationAt)
	b = appendListLen(b, k.Versions == nil, len(k.Versions))
	for i := range k.Versions {
		v := &k.Versions[i]
		b = binary.AppendUvarint(b, uint64(v.Number))
		b = appendBytes(b, v.Wrapped)
		b = appendString(b, v.RekID)
		b = binary.AppendVarint(b, v.CreatedAt)
		b = appendString(b, string(v.State))
	}
	b = binary.AppendUvarint(b, uint64(k.CurrentVersion))
	b = appendString(b, k.PrimaryZone)
	b = appendStrings(b, k.ReplicaZones)
	b = binary.AppendVarint(b, k.CreatedAt)
	b = binary.AppendVarint(b, k.UpdatedAt)
	b = binary.AppendVarint(b, k.DeletionAt)
	b = binary.AppendUvarint(b, k.Revision)
	b = binary.AppendUvarint(b, uint64(k.PendingVersion))
	b = binary.AppendUvarint(b, uint64(len(k.PendingZones)))
	for _, z := range k.PendingZones {
		b = appendString(b, z)
	}
	b = binary.AppendUvarint(b, k.PendingSeq)
	b = binary.AppendUvarint(b, k.ReplicaSeq)
	return binary.AppendUvarint(b, k.PrimaryEpoch)
}

func appendTombstone(b []byte, t *Tombstone) []byte {
	b = appendString(b, t.ID)
	b = appendString(b, t.Organization)
	b = binary.AppendVarint(b, t.PurgedAt)
	b = appendString(b, t.PrimaryZone)
	return binary.AppendUvarint(b, t.PrimaryEpoch)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// appendListLen writes n+1, or 0 for a nil list.
func appendListLen(b []byte, isNil bool, n int) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

func appendStrings(b []byte, ss []string) []byte {
	b = appendListLen(b, ss == nil, len(ss))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// readBinarySnapshot reads format 2 from br, at the magic prefix.
func readBinarySnapshot(br *bufio.Reader, zone string) (*state, error) {
	if _, err := br.Discard(len(snapshotMagic) + 1); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	fr := frameReader{br: br, offset: int64(len(snapshotMagic) + 1)}
	typ, p, err := fr.next()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	var h snapshotHeader
	if typ != frameHeader {
		return nil, fmt.Errorf("the stream starts with a frame of type %d, not a header: %w", typ, errSnapshot)
	}
	if err := decodeJSON(p, &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Format != SnapshotFormat {
		return nil, fmt.Errorf("header of format %d after the prefix of format %d: %w", h.Format, SnapshotFormat, errSnapshot)
	}
	rs := newRestoring(zone, h)
	d := payloadDecoder{interned: make(map[string]string)}
	for {
		at := fr.offset
		typ, p, err := fr.next()
		if err != nil {
			return nil, err
		}
		d.reset(p)
		switch typ {
		case frameKey:
			k := d.key()
			if err = d.finish("key"); err == nil {
				err = rs.key(k)
			}
		case frameTombstone:
			var t Tombstone
			d.tombstone(&t)
			if err = d.finish("tombstone"); err == nil {
				err = rs.tombstone(&t)
			}
		case frameChange:
			var e ChangeEntry
			if err = d.change(&e, rs.st.keys); err == nil {
				err = rs.change(&e)
			}
		case frameIdempotency:
			err = restoreJSON(p, rs.idempotency)
		case frameReplication:
			err = restoreJSON(p, rs.replication)
		case frameRemovedNode:
			err = restoreJSON(p, rs.removedNode)
		case frameImport:
			err = restoreJSON(p, rs.st.restoreImport)
		case frameOrganization:
			err = restoreJSON(p, rs.st.restoreOrganization)
		case frameToken:
			err = restoreJSON(p, rs.st.restoreToken)
		case frameEnd:
			var c snapshotCounts
			if err := decodeJSON(p, &c); err != nil {
				return nil, fmt.Errorf("end record at byte %d: %w", at, err)
			}
			if !fr.atEOF() {
				return nil, fmt.Errorf("data after end record: %w", errSnapshot)
			}
			return rs.end(&c)
		default:
			err = fmt.Errorf("unknown record type %d: %w", typ, errSnapshot)
		}
		if err != nil {
			return nil, fmt.Errorf("record at byte %d: %w", at, err)
		}
	}
}

// frameReader reads the frames of a format-2 stream.
type frameReader struct {
	br      *bufio.Reader
	offset  int64  // of the next frame in the stream
	unread  int    // bytes of the last payload still in br's buffer
	scratch []byte // payloads larger than br's buffer
}

// next returns the next frame. The payload is valid until the next call.
// A stream that ends before the end record is refused as truncated.
func (f *frameReader) next() (byte, []byte, error) {
	if _, err := f.br.Discard(f.unread); err != nil {
		return 0, nil, err // cannot happen: the bytes were peeked
	}
	f.unread = 0
	typ, err := f.br.ReadByte()
	if err == io.EOF {
		return 0, nil, fmt.Errorf("truncated before end record: %w", errSnapshot)
	} else if err != nil {
		return 0, nil, err
	}
	length, err := binary.ReadUvarint(f.br)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return 0, nil, fmt.Errorf("truncated in a frame at byte %d: %w", f.offset, errSnapshot)
	case err != nil:
		return 0, nil, fmt.Errorf("frame length at byte %d: %v: %w", f.offset, err, errSnapshot)
	case length > maxFrameSize:
		return 0, nil, fmt.Errorf("frame at byte %d announces %d bytes, more than a record takes (%d): %w",
			f.offset, length, maxFrameSize, errSnapshot)
	}
	n := int(length)
	f.offset += int64(1 + uvarintLen(length) + n)
	if n <= f.br.Size() {
		p, err := f.br.Peek(n)
		if err != nil {
			return 0, nil, f.truncated(err)
		}
		f.unread = n
		return typ, p, nil
	}
	// Grow as the bytes arrive rather than trust the length: a corrupt
	// one costs no more memory than the stream holds.
	p := f.scratch[:0]
	for len(p) < n {
		chunk := min(n-len(p), max(len(p), snapshotBufferSize))
		p = slices.Grow(p, chunk)
		m, err := io.ReadFull(f.br, p[len(p):len(p)+chunk])
		p = p[:len(p)+m]
		if err != nil {
			return 0, nil, f.truncated(err)
		}
	}
	f.scratch = p
	return typ, p, nil
}

// atEOF reports whether the stream ends after the last frame.
func (f *frameReader) atEOF() bool {
	if _, err := f.br.Discard(f.unread); err != nil {
		return false
	}
	f.unread = 0
	_, err := f.br.ReadByte()
	return err == io.EOF
}

func (f *frameReader) truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated in a frame: %w", errSnapshot)
	}
	return err
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// decodeJSON decodes a JSON payload, refusing unknown fields like the
// reader of format 1, and anything after the value.
// restoreJSON decodes one of the rarer records, kept as JSON in its
// frame, and hands it to restore.
func restoreJSON[T any](p []byte, restore func(*T) error) error {
	v := new(T)
	if err := decodeJSON(p, v); err != nil {
		return err
	}
	return restore(v)
}

func decodeJSON(p []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", err, errSnapshot)
	}
	if dec.InputOffset() != int64(len(p)) {
		return fmt.Errorf("data after a JSON record: %w", errSnapshot)
	}
	return nil
}

// payloadDecoder decodes a binary payload. Its first error sticks, and
// every read after it returns zero values, so that a record is checked
// once, at its end (finish).
type payloadDecoder struct {
	b   []byte // what is left of the payload
	err error
	// interned maps the strings of few values (organizations, zones,
	// REK ids, tags, states...) to their interned copy, so that the keys
	// of a snapshot share them and reading one allocates nothing.
	interned map[string]string
}

func (d *payloadDecoder) reset(p []byte) { d.b, d.err = p, nil }

func (d *payloadDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, errSnapshot)
	}
	d.b = nil
}

// finish reports the first error of the record what, or bytes left over.
func (d *payloadDecoder) finish(what string) error {
	switch {
	case d.err != nil:
		return fmt.Errorf("%s record: %w", what, d.err)
	case len(d.b) != 0:
		return fmt.Errorf("%s record followed by %d bytes: %w", what, len(d.b), errSnapshot)
	}
	return nil
}

func (d *payloadDecoder) readByte() byte {
	if len(d.b) == 0 {
		d.fail("cut short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *payloadDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("cut short or overlong integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *payloadDecoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("integer out of range")
		return 0
	}
	return uint32(v)
}

func (d *payloadDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("cut short or overlong integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// raw returns the next length-prefixed bytes, in the payload.
func (d *payloadDecoder) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length beyond the record")
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *payloadDecoder) str() string { return string(d.raw()) }

// blob returns a copy of the next length-prefixed bytes; nil when empty.
func (d *payloadDecoder) blob() []byte {
	if p := d.raw(); len(p) > 0 {
		return bytes.Clone(p)
	}
	return nil
}

// internedString returns the next string, interned.
func (d *payloadDecoder) internedString() string {
	p := d.raw()
	if s, ok := d.interned[string(p)]; ok {
		return s
	}
	s := intern(string(p))
	if len(d.interned) < maxInterned {
		d.interned[s] = s
	}
	return s
}

// listLen reads a length written by appendListLen.
func (d *payloadDecoder) listLen() (n int, isNil bool) {
	v := d.uvarint()
	if v == 0 {
		return 0, true
	}
	return d.count(v - 1), false
}

// count checks n, the length of a list whose elements take a byte or
// more each, against what is left of the payload.
func (d *payloadDecoder) count(n uint64) int {
	if n > uint64(len(d.b)) {
		d.fail("list longer than the record")
		return 0
	}
	return int(n)
}

func (d *payloadDecoder) internedStrings() []string {
	n, isNil := d.listLen()
	if isNil {
		return nil
	}
	ss := make([]string, 0, min(n, maxPrealloc))
	for range n {
		ss = append(ss, d.internedString())
	}
	return ss
}

// key decodes what appendKey wrote. Its strings of few values are
// interned, like internKey does.
func (d *payloadDecoder) key() *Key {
	k := &Key{
		ID:           d.str(),
		Organization: d.internedString(),
		Name:         d.str(),
		Description:  d.str(),
		Tags:         d.internedStrings(),
		Usage:        d.internedString(),
		Algorithm:    d.internedString(),
		Origin:       d.internedString(),
		State:        KeyState(d.internedString()),
	}
	flags := d.readByte()
	if flags&^keyFlags != 0 {
		d.fail("unknown key flags")
	}
	k.Protected, k.Default = flags&keyProtected != 0, flags&keyDefault != 0
	k.RotationPolicy.Period = d.varint()
	k.RotationPolicy.NextRotationAt = d.varint()
	if n, isNil := d.listLen(); !isNil {
		k.Versions = make([]Version, 0, min(n, maxPrealloc))
		for range n {
			k.Versions = append(k.Versions, Version{
				Number:    d.uint32(),
				Wrapped:   d.blob(),
				RekID:     d.internedString(),
				CreatedAt: d.varint(),
				State:     VersionState(d.internedString()),
			})
		}
	}
	k.CurrentVersion = d.uint32()
	k.PrimaryZone = d.internedString()
	k.ReplicaZones = d.internedStrings()
	k.CreatedAt = d.varint()
	k.UpdatedAt = d.varint()
	k.DeletionAt = d.varint()
	k.Revision = d.uvarint()
	k.PendingVersion = d.uint32()
	if n := d.count(d.uvarint()); n > 0 {
		k.PendingZones = make([]string, 0, min(n, maxPrealloc))
		for range n {
			k.PendingZones = append(k.PendingZones, d.internedString())
		}
	}
	k.PendingSeq = d.uvarint()
	k.ReplicaSeq = d.uvarint()
	k.PrimaryEpoch = d.uvarint()
	return k
}

func (d *payloadDecoder) tombstone(t *Tombstone) {
	t.ID = d.str()
	t.Organization = d.internedString()
	t.PurgedAt = d.varint()
	t.PrimaryZone = d.internedString()
	t.PrimaryEpoch = d.uvarint()
}

// change decodes what snapshotWriter.change wrote; live holds the keys
// read so far.
func (d *payloadDecoder) change(e *ChangeEntry, live map[string]*Key) error {
	e.Seq = d.uvarint()
	e.KeyID = d.str()
	kind := d.readByte()
	if d.err != nil {
		return d.finish("change")
	}
	switch kind {
	case changeLiveKey:
		k, ok := live[e.KeyID]
		if !ok {
			return fmt.Errorf("change entry of %q names a key the snapshot does not hold: %w", e.KeyID, errSnapshot)
		}
		e.Key = k
	case changeKey:
		e.Key = d.key()
	case changeTomb:
		e.Tombstone = new(Tombstone)
		d.tombstone(e.Tombstone)
	case changeOrg:
		e.Organization = new(Organization)
		if err := decodeJSON(d.b, e.Organization); err != nil {
			return fmt.Errorf("change record: %w", err)
		}
		d.b = nil
	case changeToken:
		e.Token = new(Token)
		if err := decodeJSON(d.b, e.Token); err != nil {
			return fmt.Errorf("change record: %w", err)
		}
		d.b = nil
	default:
		return fmt.Errorf("change entry of unknown kind %d: %w", kind, errSnapshot)
	}
	return d.finish("change")
}
