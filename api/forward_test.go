package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/keyzone/keyzone/api"
	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/fsm"
)

// failingForwarder fails every forward with err, writing nothing.
type failingForwarder struct{ err error }

func (f failingForwarder) Forward(http.ResponseWriter, *http.Request, string, []byte) error {
	return f.err
}

// TestForwardToPrimary_Failures: a change of a replica key that reached no
// node of its primary zone is 409 not_primary (nothing changed); one that
// may have reached it is 503 with an unknown outcome, never a 409 that
// would tell the caller nothing happened.
func TestForwardToPrimary_Failures(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("zone zone-b: %w", api.ErrZoneUnreachable), http.StatusConflict, wire.CodeNotPrimary},
		{errors.New("forward to b1: read: connection reset by peer"), http.StatusServiceUnavailable, wire.CodeUnavailable},
	}
	for _, tc := range cases {
		e := newEnv(t, func(c *api.Config) { c.Forwarder = failingForwarder{tc.err}; c.Zone = "zone-a" })
		replica := e.keys.Put(fsm.Key{
			ID: "00000000-0000-4000-8000-000000000998", Organization: fsm.DefaultOrganization, Name: "r",
			State: fsm.KeyStateEnabled, PrimaryZone: "zone-b", ReplicaZones: []string{"zone-a"}, Revision: 5,
		})
		rec := e.do(t, "POST", "/v1/keys/"+replica.ID+"/replicas", `{"zone":"zone-c"}`)
		body := apiError(t, rec, tc.status)
		if body.Code != tc.code {
			t.Errorf("forward failing with %q: got %d %+v, want %d %s", tc.err, rec.Code, body, tc.status, tc.code)
		}
	}
}
