package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// bindJSON decodes the request body into v, which must point to a struct.
// Decoding is strict: unknown fields, trailing data, malformed JSON and bad
// base64 are 400 with a message naming the problem; a body over the limit
// is 413. An empty body (only whitespace) is accepted when allowEmpty, and
// leaves v alone.
func (s *server) bindJSON(c *gin.Context, v any, allowEmpty bool) error {
	var raw []byte
	if c.Request.Body != nil {
		// The body is read into a pooled buffer: decoding copies what it
		// keeps (strings, base64-decoded bytes, raw messages), so nothing
		// refers to the buffer once bindJSON returns, and a request no
		// longer grows a fresh buffer from 512 bytes up to its size.
		buf := bodyBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		defer putBodyBuffer(buf)
		_, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody))
		raw = buf.Bytes()
		if err != nil {
			if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return &requestError{kind: errBodyTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
			}
			return badRequest("read request body: %v", err)
		}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("request body is empty: want a JSON object")
	}
	// The crypto requests, in the shape clients send, skip encoding/json;
	// what decodeFast declines gets encoding/json's verdict and messages.
	if decodeFast(raw, v) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err, raw, v)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("malformed JSON: unexpected data after the top-level object")
	}
	return nil
}

// bodyBuffers holds the buffers bindJSON reads request bodies into.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer kept for reuse: one that held a
// rare large body goes back to the garbage collector.
const maxPooledBody = 256 << 10

func putBodyBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyBuffers.Put(b)
	}
}

// describeJSONError turns an encoding/json error into a 400 whose message
// says what is wrong and where, without echoing the request's values.
func describeJSONError(err error, raw []byte, v any) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("malformed JSON: unexpected end of input")
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return badRequest("request body must be a JSON object, not %s", te.Value)
		}
		return badRequest("field %q: want %s, got %s", te.Field, jsonKind(te.Type), te.Value)
	}
	if _, ok := errors.AsType[base64.CorruptInputError](err); ok {
		if f := badBase64Field(raw, v); f != "" {
			return badRequest("field %q: invalid standard base64", f)
		}
		return badRequest("invalid standard base64 in a binary field")
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("unknown field %s", msg)
	}
	return badRequest("invalid JSON body: %v", err)
}

// jsonKind names a Go type the way a JSON user thinks of it.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

// badBase64Field finds which top-level []byte field of *v holds invalid
// base64 in raw; encoding/json reports the error without the field.
func badBase64Field(raw []byte, v any) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return ""
	}
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return ""
	}
	t = t.Elem()
	bytesType := reflect.TypeFor[[]byte]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type != bytesType {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		for k, val := range fields {
			var str string
			// encoding/json matches names case-insensitively; do the same.
			if !strings.EqualFold(k, name) || json.Unmarshal(val, &str) != nil {
				continue
			}
			if _, err := base64.StdEncoding.DecodeString(str); err != nil {
				return name
			}
		}
	}
	return ""
}

// parseDuration parses an optional Go duration field; "" is 0.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest("field %q: invalid duration %q: want a Go duration such as \"720h\"", field, s)
	}
	return d, nil
}

// ifMatch parses an optional If-Match header holding a key revision, bare
// (12) or as the ETag the API sends ("12"). "*" means any revision.
func ifMatch(h http.Header) (uint64, error) {
	vals := h.Values("If-Match")
	if len(vals) == 0 {
		return 0, nil
	}
	if len(vals) > 1 {
		return 0, badRequest("If-Match: want one revision, got %d headers", len(vals))
	}
	v := strings.TrimSpace(vals[0])
	if v == "*" {
		return 0, nil
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	rev, err := strconv.ParseUint(v, 10, 64)
	if err != nil || rev == 0 {
		return 0, badRequest("If-Match: want a key revision such as 12 or \"12\"")
	}
	return rev, nil
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 128

// idempotencyKey returns the optional Idempotency-Key header: 1 to 128
// printable ASCII characters.
func idempotencyKey(h http.Header) (string, error) {
	vals, ok := h[http.CanonicalHeaderKey("Idempotency-Key")]
	if !ok {
		return "", nil
	}
	if len(vals) != 1 {
		return "", badRequest("Idempotency-Key: want one header, got %d", len(vals))
	}
	k := vals[0]
	if k == "" || len(k) > maxIdempotencyKey {
		return "", badRequest("Idempotency-Key: want 1 to %d characters, got %d", maxIdempotencyKey, len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", badRequest("Idempotency-Key: want printable ASCII, got byte 0x%02x at %d", k[i], i)
		}
	}
	return k, nil
}

// queryBool parses an optional boolean query parameter; absent is false.
func queryBool(c *gin.Context, name string) (bool, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %q: want true or false", name)
	}
	return b, nil
}

// maxZoneName is the longest zone name the service accepts.
const maxZoneName = 63

// checkZone rejects what can't be a zone name before it reaches the
// service, which applies the exact rule: empty, too long, "." or "..",
// or bytes that have no place in a zone name (so a path value like
// "%2e%2e" or 1 KB of text is answered 400 and never echoed in full).
func checkZone(what, z string) error {
	switch {
	case z == "":
		return badRequest("%s: want a zone name, got none", what)
	case len(z) > maxZoneName:
		return badRequest("%s: a zone name has at most %d characters, got %d", what, maxZoneName, len(z))
	case z == "." || z == "..":
		return badRequest("%s: %q is not a zone name", what, z)
	}
	for i := 0; i < len(z); i++ {
		c := z[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return badRequest("%s: byte 0x%02x at %d has no place in a zone name", what, c, i)
		}
	}
	return nil
}
