package api_test

import (
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/apitest"
)

// BenchmarkMiddleware_Live measures the shared middleware (request id,
// request metrics, request log, recovery, error rendering) on the
// cheapest route, with and without request metrics.
func BenchmarkMiddleware_Live(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		name := "no-metrics"
		if withMetrics {
			name = "metrics"
		}
		b.Run(name, func(b *testing.B) {
			cfg := api.Config{Keys: apitest.NewKeys(), Cluster: apitest.NewCluster(), Tenants: apitest.NewTenants(), OperatorToken: operatorToken, Logger: hclog.NewNullLogger()}
			if withMetrics {
				cfg.Registerer = prometheus.NewRegistry()
			}
			h, err := api.NewRouter(cfg)
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/v1/health/live", nil)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
