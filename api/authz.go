package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
)

// Who may call a route: a set of callers. The cluster operator's token
// manages organizations and the cluster and uses no organization's keys;
// an organization's token acts in its organization with its role.
type access uint8

const (
	byOperator access = 1 << iota
	byOrgAdmin
	byKeyAdmin
	byCryptoUser
	byAuditor

	anyRole   = byOrgAdmin | byKeyAdmin | byCryptoUser | byAuditor
	keyAdmins = byOrgAdmin | byKeyAdmin
	keyReads  = byOrgAdmin | byKeyAdmin | byAuditor
	cryptoers = byOrgAdmin | byCryptoUser
)

var roleAccess = map[fsm.Role]access{
	fsm.RoleOrgAdmin:   byOrgAdmin,
	fsm.RoleKeyAdmin:   byKeyAdmin,
	fsm.RoleCryptoUser: byCryptoUser,
	fsm.RoleAuditor:    byAuditor,
}

// roleOperator is the role the audit log gives the operator's token.
const roleOperator = "operator"

// opKind says how a route's audit record is treated.
type opKind uint8

const (
	// opRead and opCrypto go on when the audit log can't take their
	// record; the loss is counted in keyzone_audit_dropped_total.
	opRead opKind = iota
	opCrypto
	// opChange (key lifecycle, tokens, organizations, the cluster) fails
	// closed: refused with 503 while no audit sink takes records.
	opChange
)

// policy is what the API knows of a route beyond its handler: who may
// call it, the operation's name in the audit log, and its kind. A route
// without a policy is refused to everyone (deny by default).
type policy struct {
	allow access
	op    string
	kind  opKind
}

// principal is the caller, as its token says.
type principal struct {
	operator bool
	token    *fsm.Token
	org      *fsm.Organization
}

func (p *principal) role() string {
	switch {
	case p == nil:
		return ""
	case p.operator:
		return roleOperator
	default:
		return string(p.token.Role)
	}
}

func (p *principal) access() access {
	if p.operator {
		return byOperator
	}
	return roleAccess[p.token.Role]
}

type principalKey struct{}

func caller(c *gin.Context) *principal {
	p, _ := c.Get(principalKey{})
	pr, _ := p.(*principal)
	return pr
}

// org returns the caller's organization id ("" for the operator, who
// never reaches a key route).
func org(c *gin.Context) string {
	if p := caller(c); p != nil && p.org != nil {
		return p.org.ID
	}
	return ""
}

// allow returns the caller token's key restriction, nil for none.
func allow(c *gin.Context) keys.KeyFilter {
	if p := caller(c); p != nil && !p.operator {
		return keys.TokenFilter(p.token)
	}
	return nil
}

var (
	errForbidden        = errors.New("this token's role may not call this route")
	errAuthCatchingUp   = errors.New("this node is catching up with its zone and can't check the token yet: retry later or on another node")
	errAuditUnavailable = errors.New("the audit log takes no records: lifecycle and admin calls are refused until it does")
)

// bearer returns the token of "Authorization: Bearer <token>".
func bearer(c *gin.Context) (string, bool) {
	scheme, token, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token, strings.EqualFold(scheme, "Bearer") && token != ""
}

// authenticate finds the caller: the operator's token (both sides hashed,
// so the comparison is constant-time and length-blind) or a live token of
// an organization. Anything else is 401, the same answer whatever was
// wrong with it.
func (s *server) authenticate(c *gin.Context) {
	secret, ok := bearer(c)
	if ok {
		got := sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], s.operatorHash[:]) == 1 {
			c.Set(principalKey{}, &principal{operator: true})
			c.Next()
			return
		}
		t, o, err := s.tenants.Authenticate(c.Request.Context(), secret)
		switch {
		case err == nil:
			c.Set(principalKey{}, &principal{token: t, org: o})
			c.Next()
			return
		case errors.Is(err, context.Canceled):
			c.Error(err)
			c.Abort()
			return
		case !errors.Is(err, keys.ErrUnauthenticated):
			s.logger.Warn("token check waits for this node to catch up", "error", err)
			c.Error(errAuthCatchingUp)
			c.Abort()
			return
		}
	}
	c.Header("WWW-Authenticate", "Bearer")
	c.Error(errUnauthorized)
	c.Abort()
}

// authorize lets the caller through when the route's policy names its
// role, and the change through only while the audit log takes records.
func (s *server) authorize(pol policy) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := caller(c)
		if p == nil || pol.allow&p.access() == 0 {
			c.Error(errForbidden)
			c.Abort()
			return
		}
		if pol.kind == opChange && s.auditHealth != nil {
			if err := s.auditHealth.Healthy(); err != nil {
				s.logger.Error("refusing a change: the audit log takes no records", "route", route(c), "error", err)
				c.Error(errAuditUnavailable)
				c.Abort()
				return
			}
		}
		c.Next()
	}
}

// defaultKeyID is the id callers may use for their organization's default
// key, in a path or in a body's key id.
const defaultKeyID = "default"

// defaultKeyAlias resolves "default" to the caller's default key.
func defaultKeyAlias(c *gin.Context, id string) string {
	if id == defaultKeyID {
		if p := caller(c); p != nil && p.org != nil && p.org.DefaultKeyID != "" {
			return p.org.DefaultKeyID
		}
	}
	return id
}

// resolveDefaultKey rewrites the path's key id "default".
func resolveDefaultKey(c *gin.Context) {
	for i := range c.Params {
		if c.Params[i].Key == "id" {
			c.Params[i].Value = defaultKeyAlias(c, c.Params[i].Value)
		}
	}
	c.Next()
}

// rateLimits keeps a token bucket per organization on this node.
type rateLimits struct {
	defRate  float64
	defBurst int
	now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newRateLimits(rate float64, burst int) *rateLimits {
	return &rateLimits{defRate: rate, defBurst: burst, now: time.Now, buckets: make(map[string]*bucket)}
}

// take spends one request of o's budget; when there is none it returns
// how long until there is.
func (r *rateLimits) take(o *fsm.Organization) (time.Duration, bool) {
	rate, burst := o.RateLimit, float64(o.RateBurst)
	if rate == 0 {
		rate = r.defRate
	}
	if burst == 0 {
		burst = float64(r.defBurst)
	}
	if rate < 0 || rate == 0 && r.defRate <= 0 {
		return 0, true
	}
	burst = max(burst, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	// Read the clock under the lock, so that the bucket's time never goes
	// backwards between concurrent requests.
	now := r.now()
	b := r.buckets[o.ID]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		r.buckets[o.ID] = b
	}
	b.rate, b.burst = rate, burst
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second)), false
}

// errRateLimited answers 429; Retry-After says when to come back.
type errRateLimited struct{ wait time.Duration }

func (e *errRateLimited) Error() string {
	return "the organization's request rate limit is reached; retry after " + strconv.Itoa(retryAfterSeconds(e.wait)) + "s"
}

func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// rateLimit applies the caller's organization's request rate limit. The
// operator is not limited.
func (s *server) rateLimit(c *gin.Context) {
	p := caller(c)
	if p == nil || p.operator || s.limits == nil {
		c.Next()
		return
	}
	if wait, ok := s.limits.take(p.org); !ok {
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		c.Error(&errRateLimited{wait: wait})
		c.Abort()
		return
	}
	c.Next()
}
