package api

import (
	"slices"
	"strings"
)

// RoutePolicy is a route's policy as the tests see it: the callers it
// admits ("operator" and role names), its audit operation and its kind.
type RoutePolicy struct {
	Callers   []string
	Operation string
	Kind      string
}

// RoutesAndPolicies builds a router from cfg and returns every route it
// serves, as "METHOD /path" sorted, and the policy of each route that was
// registered with one, by the same "METHOD /path".
func RoutesAndPolicies(cfg Config) ([]string, map[string]RoutePolicy, error) {
	e, s, err := newRouter(cfg)
	if err != nil {
		return nil, nil, err
	}
	var routes []string
	for _, r := range e.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	slices.Sort(routes)
	pols := make(map[string]RoutePolicy, len(s.policies))
	for k, p := range s.policies {
		rp := RoutePolicy{Operation: p.op, Kind: [...]string{opRead: "read", opCrypto: "crypto", opChange: "change"}[p.kind]}
		for _, c := range []struct {
			a    access
			name string
		}{{byOperator, roleOperator}, {byOrgAdmin, "org-admin"}, {byKeyAdmin, "key-admin"}, {byCryptoUser, "crypto-user"}, {byAuditor, "auditor"}} {
			if p.allow&c.a != 0 {
				rp.Callers = append(rp.Callers, c.name)
			}
		}
		pols[k] = rp
	}
	return routes, pols, nil
}

// CallersString joins a policy's callers with ",".
func (p RoutePolicy) CallersString() string { return strings.Join(p.Callers, ",") }
