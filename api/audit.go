package api

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/audit"
)

// headerRequestID carries the request id on every response: the one the
// caller sent when it is a sane short token, else one made here. The audit
// log records it, so a caller can find its call there.
const headerRequestID = "X-Request-Id"

// maxRequestID bounds an incoming request id (and an id named in a route,
// as the audit log records it).
const maxRequestID = 64

// requestIDs makes request ids: a random prefix per router, so that ids
// of different nodes and restarts do not collide, and a counter.
type requestIDs struct {
	prefix string
	seq    atomic.Uint64
}

func newRequestIDs() *requestIDs {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return &requestIDs{prefix: hex.EncodeToString(b) + "-"}
}

func (r *requestIDs) next() string {
	var buf [48]byte
	b := append(buf[:0], r.prefix...)
	b = strconv.AppendUint(b, r.seq.Add(1), 36)
	return string(b)
}

// requestID sets X-Request-Id on the response before anything else runs,
// so that error answers carry it too.
func (s *server) requestID(c *gin.Context) {
	id := c.Request.Header.Get(headerRequestID)
	if !saneToken(id, maxRequestID) {
		id = s.ids.next()
	}
	c.Writer.Header()[headerRequestID] = []string{id}
	c.Next()
}

// saneToken: 1 to max characters of letters, digits, '.', '_', '-' and
// ':'. Anything else a caller sends (long strings, spaces, control
// characters) is not written to the audit log.
func saneToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9',
			ch == '.', ch == '_', ch == '-', ch == ':':
		default:
			return false
		}
	}
	return true
}

// auditKeyKey holds the key and version a call used, for its audit record.
type auditKeyKey struct{}

type auditedKey struct {
	id      string
	version uint32
}

// auditKey tells the audit record which key and version the call used.
func auditKey(c *gin.Context, id string, version uint32) {
	c.Set(auditKeyKey{}, auditedKey{id: id, version: version})
}

// auditOrgKey holds the id of the organization an operator's call acted
// on, for its audit record.
type auditOrgKey struct{}

// auditOrg tells the audit record which organization the call acted on,
// so that an operator's call naming it by name is recorded under its id,
// like the calls of its own tokens.
func auditOrg(c *gin.Context, id string) {
	c.Set(auditOrgKey{}, id)
}

// audit records one event per call of the route it guards, after the
// call, whatever its outcome: it runs before authentication, so calls
// refused for a missing or wrong token are recorded too, and it records a
// call whose handler panicked as failed (500) while the panic goes on up.
// Bodies, headers and query strings are never read: no plaintext,
// ciphertext, key material or token secret can reach the record.
func (s *server) audit(pol policy) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		completed := false
		defer func() {
			status, code := responseStatus(c)
			if !completed {
				status, code = internalRule.status, internalRule.code
			}
			s.recordAudit(c, pol, start, status, code)
		}()
		c.Next()
		completed = true
	}
}

func (s *server) recordAudit(c *gin.Context, pol policy, start time.Time, status int, code string) {
	e := audit.Event{
		Time:      start,
		RequestID: c.Writer.Header().Get(headerRequestID),
		Node:      s.nodeID,
		Zone:      s.zone,
		Method:    c.Request.Method,
		Route:     route(c),
		Operation: pol.op,
		Status:    status,
		Outcome:   audit.OutcomeOf(status),
		Code:      code,
		Source:    remoteHost(c.Request.RemoteAddr),
		Duration:  time.Since(start),
	}
	if p := caller(c); p != nil {
		e.Role = p.role()
		if !p.operator {
			e.Organization, e.TokenID = p.org.ID, p.token.ID
		}
	}
	if id := c.Param("id"); id != "" {
		id = auditParam(id)
		if strings.HasPrefix(e.Route, "/v1/cluster/") {
			e.PeerID = id
		} else {
			e.KeyID = id
		}
	}
	if v, ok := c.Get(auditKeyKey{}); ok {
		k := v.(auditedKey)
		e.KeyID, e.KeyVersion = k.id, k.version
	}
	if tok := c.Param("token"); tok != "" {
		e.SubjectTokenID = auditParam(tok)
	}
	if z := c.Param("zone"); z != "" {
		e.TargetZone = auditParam(z)
	}
	if e.Organization == "" {
		if v, ok := c.Get(auditOrgKey{}); ok {
			e.Organization = v.(string)
		} else if o := c.Param("org"); o != "" {
			e.Organization = auditParam(o)
		}
	}
	// A change waits for its record, so that no change is answered
	// before it is on record. The other calls' records are written in
	// batches within a millisecond: one write system call for many
	// records, off the request's path.
	if pol.kind != opChange {
		s.auditQueue.Defer(e)
		return
	}
	if err := s.auditQueue.Record(e); err != nil {
		s.auditFailed(e, err)
	}
}

// auditFailed reports an audit record no sink took. The call has been
// carried out: say loudly that its record is missing rather than
// pretend. Changes are refused from now on, until a record goes through
// again (see authorize).
func (s *server) auditFailed(e audit.Event, err error) {
	s.auditDropped.Inc()
	s.logger.Error("audit record failed", "request_id", e.RequestID, "route", e.Route, "error", err)
}

// responseStatus is the status the caller gets: an error attached with
// c.Error is rendered by renderErrors only after the middleware below it
// returned, from the same table.
func responseStatus(c *gin.Context) (int, string) {
	if len(c.Errors) > 0 && !c.Writer.Written() {
		r := ruleFor(c.Errors.Last().Err)
		return r.status, r.code
	}
	return c.Writer.Status(), ""
}

// auditParam keeps an id from the path as is when it looks like one, so
// that a caller can't write arbitrary text into the audit log.
func auditParam(v string) string {
	if saneToken(v, maxRequestID) {
		return v
	}
	return "(invalid)"
}

func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
