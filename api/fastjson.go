package api

import (
	"encoding/base64"
	"net/http"
	"reflect"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
)

// The crypto routes carry small bodies of a fixed shape, and encoding/json
// (reflection, a scanner pass before decoding, the check for trailing
// data) costs as much as the cryptography behind them. The functions here
// decode and encode those bodies by hand for the shape clients send and
// the server writes. The decoder only ever accepts what encoding/json
// accepts, giving the same value; anything else (escapes, non-ASCII text,
// other letter case in names, duplicated fields, errors of any kind) it
// declines, and encoding/json decides as before, with its messages.

// decodeFast decodes raw into v when v is one of the crypto requests and
// raw is in the shape decodeFast knows, and reports whether it did. When
// it declines, v is left as it was.
func decodeFast(raw []byte, v any) bool {
	switch p := v.(type) {
	case *wire.EncryptRequest:
		return isZero(p) && decodeEncryptRequest(raw, p)
	case *wire.DecryptRequest:
		return isZero(p) && decodeDecryptRequest(raw, p)
	case *wire.GenerateDataKeyRequest:
		return isZero(p) && decodeGenerateDataKeyRequest(raw, p)
	case *wire.ReEncryptRequest:
		return isZero(p) && decodeReEncryptRequest(raw, p)
	}
	return false
}

// isZero reports whether *p is its type's zero value. encoding/json
// decodes into what *p holds (maps are merged, absent fields kept), while
// the decoders below build a fresh value, so they agree only from zero.
func isZero[T any](p *T) bool {
	return reflect.ValueOf(p).Elem().IsZero()
}

func decodeEncryptRequest(raw []byte, p *wire.EncryptRequest) bool {
	var r wire.EncryptRequest
	if !decodeSealedFields(raw, "plaintext", &r.Plaintext, &r.EncryptionContext, &r.AssociatedData) {
		return false
	}
	*p = r
	return true
}

func decodeDecryptRequest(raw []byte, p *wire.DecryptRequest) bool {
	var r wire.DecryptRequest
	if !decodeSealedFields(raw, "ciphertext", &r.Ciphertext, &r.EncryptionContext, &r.AssociatedData) {
		return false
	}
	*p = r
	return true
}

// decodeSealedFields decodes the body of an encrypt or a decrypt: the
// payload under its name, the encryption context and associated data.
func decodeSealedFields(raw []byte, payloadName string, payload *[]byte, context *map[string]string, ad *[]byte) bool {
	s := jsonScanner{b: raw}
	for s.nextField() {
		switch string(s.name) {
		case payloadName:
			s.bytesValue(0, payload)
		case "encryption_context":
			s.mapValue(1, context)
		case "associated_data":
			s.bytesValue(2, ad)
		default:
			return false
		}
	}
	return s.done()
}

func decodeGenerateDataKeyRequest(raw []byte, p *wire.GenerateDataKeyRequest) bool {
	var r wire.GenerateDataKeyRequest
	s := jsonScanner{b: raw}
	for s.nextField() {
		switch string(s.name) {
		case "key_size":
			s.intValue(0, &r.KeySize)
		case "without_plaintext":
			s.boolValue(1, &r.WithoutPlaintext)
		case "encryption_context":
			s.mapValue(2, &r.EncryptionContext)
		case "associated_data":
			s.bytesValue(3, &r.AssociatedData)
		default:
			return false
		}
	}
	if !s.done() {
		return false
	}
	*p = r
	return true
}

func decodeReEncryptRequest(raw []byte, p *wire.ReEncryptRequest) bool {
	var r wire.ReEncryptRequest
	s := jsonScanner{b: raw}
	for s.nextField() {
		switch string(s.name) {
		case "ciphertext":
			s.bytesValue(0, &r.Ciphertext)
		case "encryption_context":
			s.mapValue(1, &r.EncryptionContext)
		case "associated_data":
			s.bytesValue(2, &r.AssociatedData)
		case "destination_key_id":
			s.stringValue(3, &r.DestinationKeyID)
		case "destination_encryption_context":
			s.mapValue(4, &r.DestinationEncryptionContext)
		case "destination_associated_data":
			s.bytesValue(5, &r.DestinationAssociatedData)
		default:
			return false
		}
	}
	if !s.done() {
		return false
	}
	*p = r
	return true
}

// jsonScanner walks one JSON object of plain fields:
//
//	for s.nextField() { switch string(s.name) { ... s.xxxValue(...) } }
//	if !s.done() { decline }
//
// Any input it does not know sets failed, which ends the loop and makes
// done false.
type jsonScanner struct {
	b      []byte
	i      int
	name   []byte // of the current field, without quotes
	seen   uint   // bit n: the field decoded as number n
	opened bool   // the '{' is consumed
	closed bool   // the '}' is consumed
	failed bool
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips c, which may follow white space.
func (s *jsonScanner) consume(c byte) bool {
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// nextField moves to the next field of the object, past its name and
// colon, and reports whether there is one.
func (s *jsonScanner) nextField() bool {
	if s.failed || s.closed {
		return false
	}
	if !s.opened {
		if !s.consume('{') {
			s.failed = true
			return false
		}
		s.opened = true
		if s.consume('}') {
			s.closed = true
			return false
		}
	} else if !s.consume(',') {
		if s.consume('}') {
			s.closed = true
		} else {
			s.failed = true
		}
		return false
	}
	s.skipSpace()
	name, ok := s.plainString()
	if !ok || !s.consume(':') {
		s.failed = true
		return false
	}
	s.name = name
	s.skipSpace()
	return true
}

// done reports whether the whole input was one object the scanner knew,
// followed by nothing but white space.
func (s *jsonScanner) done() bool {
	s.skipSpace()
	return !s.failed && s.closed && s.i == len(s.b)
}

// field marks field number n decoded, and declines a second time:
// encoding/json would overwrite or merge.
func (s *jsonScanner) field(n uint) bool {
	if s.seen&(1<<n) != 0 {
		s.failed = true
		return false
	}
	s.seen |= 1 << n
	return true
}

// plainString returns the contents of the string at the cursor when it
// is printable ASCII without escapes: its bytes are then its value.
// encoding/json replaces invalid UTF-8, so anything else is declined.
func (s *jsonScanner) plainString() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// null consumes a null literal at the cursor. For the fields decoded
// here null leaves the zero value: encoding/json sets a slice or map to
// nil and leaves a string, number or boolean alone.
func (s *jsonScanner) null() bool {
	return s.literal("null")
}

func (s *jsonScanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// bytesValue decodes a base64 string as encoding/json does: the same
// decoder, which skips \r and \n, and "" gives an empty, non-nil slice.
func (s *jsonScanner) bytesValue(n uint, dst *[]byte) {
	if !s.field(n) || s.null() {
		return
	}
	str, ok := s.plainString()
	if !ok {
		s.failed = true
		return
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(str)))
	m, err := base64.StdEncoding.Decode(b, str)
	if err != nil {
		s.failed = true
		return
	}
	*dst = b[:m]
}

func (s *jsonScanner) stringValue(n uint, dst *string) {
	if !s.field(n) || s.null() {
		return
	}
	str, ok := s.plainString()
	if !ok {
		s.failed = true
		return
	}
	*dst = string(str)
}

// maxIntDigits keeps intValue clear of overflow, even for a 32-bit int.
const maxIntDigits = 9

// intValue decodes an integer without fraction or exponent, which
// encoding/json refuses for an int.
func (s *jsonScanner) intValue(n uint, dst *int) {
	if !s.field(n) || s.null() {
		return
	}
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start := s.i
	v := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		v = v*10 + int(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	// A leading zero must stand alone: 01 is not JSON.
	if digits == 0 || digits > maxIntDigits || digits > 1 && s.b[start] == '0' {
		s.failed = true
		return
	}
	if neg {
		v = -v
	}
	*dst = v
}

func (s *jsonScanner) boolValue(n uint, dst *bool) {
	if !s.field(n) || s.null() {
		return
	}
	switch {
	case s.literal("true"):
		*dst = true
	case s.literal("false"):
		*dst = false
	default:
		s.failed = true
	}
}

// mapValue decodes an object of strings. A repeated key takes its last
// value, as with encoding/json, and {} gives an empty, non-nil map.
func (s *jsonScanner) mapValue(n uint, dst *map[string]string) {
	if !s.field(n) || s.null() {
		return
	}
	if !s.consume('{') {
		s.failed = true
		return
	}
	m := make(map[string]string)
	if s.consume('}') {
		*dst = m
		return
	}
	for {
		s.skipSpace()
		k, ok := s.plainString()
		if !ok || !s.consume(':') {
			s.failed = true
			return
		}
		s.skipSpace()
		v, ok := s.plainString()
		if !ok {
			s.failed = true
			return
		}
		m[string(k)] = string(v)
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			*dst = m
			return
		}
		s.failed = true
		return
	}
}

// The response encoders append what json.Marshal writes for the same
// value, byte for byte, and report false for a key id that would need
// escaping, which is left to encoding/json.

func appendEncryptResponse(b []byte, r wire.EncryptResponse) ([]byte, bool) {
	b, ok := appendKeyResult(b, r.KeyID, r.KeyVersion)
	if !ok {
		return b, false
	}
	b = appendBytesField(b, "ciphertext", r.Ciphertext)
	return append(b, '}'), true
}

func appendDecryptResponse(b []byte, r wire.DecryptResponse) ([]byte, bool) {
	b, ok := appendKeyResult(b, r.KeyID, r.KeyVersion)
	if !ok {
		return b, false
	}
	b = appendBytesField(b, "plaintext", r.Plaintext)
	return append(b, '}'), true
}

func appendGenerateDataKeyResponse(b []byte, r wire.GenerateDataKeyResponse) ([]byte, bool) {
	b, ok := appendKeyResult(b, r.KeyID, r.KeyVersion)
	if !ok {
		return b, false
	}
	if len(r.Plaintext) > 0 { // omitempty
		b = appendBytesField(b, "plaintext", r.Plaintext)
	}
	b = appendBytesField(b, "ciphertext", r.Ciphertext)
	return append(b, '}'), true
}

// A re-encrypt answers the fields of an encrypt.
func appendReEncryptResponse(b []byte, r wire.ReEncryptResponse) ([]byte, bool) {
	return appendEncryptResponse(b, wire.EncryptResponse(r))
}

// appendKeyResult opens the object with the fields every crypto response
// starts with.
func appendKeyResult(b []byte, keyID string, version uint32) ([]byte, bool) {
	if !plainJSON(keyID) {
		return b, false
	}
	b = append(b, `{"key_id":"`...)
	b = append(b, keyID...)
	b = append(b, `","key_version":`...)
	b = strconv.AppendUint(b, uint64(version), 10)
	return b, true
}

// appendBytesField appends a []byte field as encoding/json writes it:
// standard base64 with padding, null when nil.
func appendBytesField(b []byte, name string, v []byte) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// plainJSON reports whether encoding/json writes s as is between quotes:
// printable ASCII other than the quote, the backslash and the characters
// it escapes for HTML (<, > and &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x80, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// jsonContentType is the Content-Type c.JSON sends.
var jsonContentType = []string{"application/json; charset=utf-8"}

// jsonBuffers holds the buffers respondJSON encodes into; the response
// writer copies what it is given, so a buffer is free once written.
var jsonBuffers = sync.Pool{New: func() any { return new([]byte) }}

// respondJSON answers 200 with v's JSON, as c.JSON(http.StatusOK, v)
// does, encoded by appendJSON unless it declines.
func respondJSON[T any](c *gin.Context, v T, appendJSON func([]byte, T) ([]byte, bool)) {
	respondJSONStatus(c, http.StatusOK, v, appendJSON)
}

// respondJSONStatus is respondJSON with another status than 200.
func respondJSONStatus[T any](c *gin.Context, status int, v T, appendJSON func([]byte, T) ([]byte, bool)) {
	bp := jsonBuffers.Get().(*[]byte)
	b, ok := appendJSON((*bp)[:0], v)
	if !ok {
		jsonBuffers.Put(bp)
		c.JSON(status, v)
		return
	}
	// What c.Render does for c.JSON, without the reflection.
	c.Status(status)
	if h := c.Writer.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	if _, err := c.Writer.Write(b); err != nil {
		_ = c.Error(err)
		c.Abort()
	}
	if cap(b) <= maxPooledBody {
		*bp = b
		jsonBuffers.Put(bp)
	}
}
