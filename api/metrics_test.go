package api_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keyzone/keyzone/api"
)

// requestSeries returns the request counter's series as
// "route method code" -> count, after checking that the latency histogram
// has the same series with the same counts.
func requestSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts, samples := map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "keyzone_http_requests_total":
				counts[labels(m)] = m.GetCounter().GetValue()
			case "keyzone_http_request_duration_seconds":
				samples[labels(m)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if !maps.Equal(counts, samples) {
		t.Errorf("histogram sample counts %v differ from request counts %v", samples, counts)
	}
	return counts
}

func labels(m *dto.Metric) string {
	var route, method, code string
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "route":
			route = l.GetValue()
		case "method":
			method = l.GetValue()
		case "code":
			code = l.GetValue()
		}
	}
	return route + " " + method + " " + code
}

func TestMetrics_RequestsByRoutePattern(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *api.Config) { c.Registerer = reg })
	k := e.createKey(t, "m1")
	for range 3 {
		if rec := e.do(t, "POST", "/v1/keys/"+k.ID+"/encrypt", `{"plaintext":"aGk="}`); rec.Code != http.StatusOK {
			t.Fatalf("encrypt: %d %s", rec.Code, rec.Body)
		}
	}
	e.do(t, "GET", "/v1/keys/kz-no-such-key-0123456789", "")
	e.do(t, "GET", "/v1/keys/"+k.ID, "", "Authorization", "Bearer wrong-token")
	e.do(t, "GET", "/v1/no/such/route/"+k.ID, "")
	e.do(t, "BREW", "/v1/keys", "")
	e.do(t, "GET", "/v1/health", "", "Authorization", "")

	got := requestSeries(t, reg)
	want := map[string]float64{
		"/v1/keys POST 201":             1,
		"/v1/keys/:id/encrypt POST 200": 3,
		"/v1/keys/:id GET 404":          1,
		"/v1/keys/:id GET 401":          1,
		"unmatched GET 404":             1,
		"unmatched OTHER 405":           1,
		"/v1/health GET 200":            1,
	}
	for series, n := range want {
		if got[series] != n {
			t.Errorf("series %q: got %v, want %v (all: %v)", series, got[series], n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got series %v, want exactly %v", got, want)
	}
	for series := range got {
		if strings.Contains(series, k.ID) || strings.Contains(series, "kz-no-such-key") || strings.Contains(series, "BREW") {
			t.Errorf("series %q holds a raw path or method", series)
		}
	}
}

// Two routers can't share a registry: the second is refused, not a panic.
func TestMetrics_RegistryConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *api.Config) { c.Registerer = reg })
	_, err := api.NewRouter(api.Config{Keys: e.keys, Cluster: e.cluster, Tenants: e.tenants, OperatorToken: operatorToken, Registerer: reg})
	if err == nil {
		t.Error("NewRouter with an already used registry: want an error")
	}
}
