// Package api is Keyzone's HTTP API: a gin router with thin handlers that
// parse a request, call one KeyService or ClusterService method, and render
// the answer with the DTOs of package wire.
//
// Cross-cutting behaviour lives in middleware, once: an audit record per
// request, bearer-token authentication (the cluster operator's token or an
// organization's), authorization by each route's policy (router.go holds
// the one table of routes and policies, authz.go the roles), the
// organization's rate limit, panic recovery, a Debug request log, and the
// mapping of errors to HTTP statuses and stable codes (errors.go holds the
// only table). Handlers never touch Raft, crypto or
// lifecycle rules; they report failures with c.Error and return.
//
// Request bodies are decoded strictly: unknown fields, trailing data,
// malformed JSON and bad base64 are 400 with a message naming the problem,
// and a body over the limit derived from Config.MaxPayload is 413.
package api
