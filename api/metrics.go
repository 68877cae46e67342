package api

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyzone/keyzone/audit"
)

// requestMetrics counts and times the API's requests by route pattern,
// method and status. The route is gin's pattern (/v1/keys/:id/encrypt),
// never the path, so no key id reaches a label; paths that match no route
// share "unmatched", and unusual methods share "OTHER", so a caller can't
// grow the label sets.
//
// It sits on every request, the crypto ones included, so it resolves the
// label children once per (route, method, status) and keeps them; a
// request then costs two clock reads, a map lookup without allocation,
// one counter increment and one histogram observation.
type requestMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.Mutex // serializes additions to routes
	routes atomic.Pointer[map[routeKey]*routeMetrics]
}

type routeKey struct{ method, route string }

type routeMetrics struct {
	key   routeKey
	codes [len(knownStatuses)]atomic.Pointer[codeMetrics]
}

type codeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// knownStatuses are the statuses the API answers with; their children are
// kept per route. Any other status resolves its children on each request.
var knownStatuses = [...]int{200, 201, 204, 307, 400, 401, 403, 404, 405, 409, 412, 413, 422, 429, 499, 500, 502, 503, 504}

func statusSlot(status int) int {
	for i, s := range knownStatuses {
		if s == status {
			return i
		}
	}
	return -1
}

func newRequestMetrics(reg prometheus.Registerer) (*requestMetrics, error) {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyzone_http_requests_total",
			Help: "API requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyzone_http_request_duration_seconds",
			Help:    "Time to answer API requests, by route pattern, method and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
	}
	empty := map[routeKey]*routeMetrics{}
	m.routes.Store(&empty)
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// instrument is the outermost middleware: the status it reads is the one
// sent, after error rendering and panic recovery.
func (s *server) instrument(c *gin.Context) {
	if s.metrics == nil {
		c.Next()
		return
	}
	start := time.Now()
	c.Next()
	s.metrics.observe(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
}

func (m *requestMetrics) observe(method, path string, status int, d time.Duration) {
	r := m.route(normalizeMethod(method), path)
	slot := statusSlot(status)
	var cm *codeMetrics
	if slot >= 0 {
		cm = r.codes[slot].Load()
	}
	if cm == nil {
		cm = m.children(r.key, status)
		if slot >= 0 {
			r.codes[slot].Store(cm)
		}
	}
	cm.requests.Inc()
	cm.duration.Observe(d.Seconds())
}

func (m *requestMetrics) children(k routeKey, status int) *codeMetrics {
	code := statusText(status)
	return &codeMetrics{
		requests: m.requests.WithLabelValues(k.route, k.method, code),
		duration: m.duration.WithLabelValues(k.route, k.method, code),
	}
}

// route returns the entry of (method, path), adding it on first use.
// Reads take no lock: the map is replaced, never changed, and its size is
// bounded by the routes times the methods.
func (m *requestMetrics) route(method, path string) *routeMetrics {
	if path == "" {
		path = "unmatched"
	}
	k := routeKey{method, path}
	if r, ok := (*m.routes.Load())[k]; ok {
		return r
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.routes.Load()
	if r, ok := old[k]; ok {
		return r
	}
	next := make(map[routeKey]*routeMetrics, len(old)+1)
	for kk, v := range old {
		next[kk] = v
	}
	r := &routeMetrics{key: k}
	next[k] = r
	m.routes.Store(&next)
	return r
}

func normalizeMethod(m string) string {
	switch m {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS":
		return m
	}
	return "OTHER"
}

func statusText(status int) string {
	if status >= 100 && status <= 999 {
		return strconv.Itoa(status)
	}
	return "other"
}

// initObservability sets up what the middleware of metrics.go and
// audit.go share: request ids, the request metrics when cfg has a
// Registerer, and the audit sink (the node's log when cfg has none).
func (s *server) initObservability(cfg Config) error {
	s.nodeID = cfg.NodeID
	s.ids = newRequestIDs()
	sink := cfg.Audit
	if sink == nil {
		sink = audit.NewLogSink(cfg.Logger)
	}
	s.auditHealth, _ = sink.(audit.HealthReporter)
	s.auditQueue = audit.NewQueue(sink, audit.QueueOptions{OnDrop: s.auditFailed})
	s.auditDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keyzone_audit_dropped_total",
		Help: "Audit records no sink took (the calls were carried out; changes are refused while no sink takes records).",
	})
	if cfg.Registerer != nil {
		m, err := newRequestMetrics(cfg.Registerer)
		if err != nil {
			return fmt.Errorf("api: request metrics: %w", err)
		}
		s.metrics = m
		if err := cfg.Registerer.Register(s.auditDropped); err != nil {
			return fmt.Errorf("api: audit metrics: %w", err)
		}
	}
	return nil
}
