package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/snapshot"
)

// Errors of the HTTP layer itself. They travel through c.Errors and the
// table like any other error; a requestError gives them a precise message.
var (
	errBadRequest       = errors.New("bad request")
	errUnauthorized     = errors.New("missing or invalid bearer token")
	errRouteNotFound    = errors.New("no such route")
	errMethodNotAllowed = errors.New("method not allowed on this route")
	errBodyTooLarge     = errors.New("request body too large")
)

// requestError is a problem with the request found by the API layer. Its
// message is sent to the caller as is; kind selects the table row.
type requestError struct {
	kind error
	msg  string
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.kind }

func badRequest(format string, args ...any) error {
	return &requestError{kind: errBadRequest, msg: fmt.Sprintf(format, args...)}
}

// errorRule maps the errors match accepts to a status and a stable code.
// The message is describe(err) when describe is set, else message; an
// empty message sends the error's own text. Both are only done for 4xx:
// those texts name a field, a key id, a zone or a state, never key material.
type errorRule struct {
	match      func(error) bool
	status     int
	code       string
	message    string
	describe   func(error) string
	retryAfter bool
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isTransition(err error) bool {
	_, ok := errors.AsType[*fsm.TransitionError](err)
	return ok
}

func isNotPrimary(err error) bool {
	_, ok := errors.AsType[*fsm.NotPrimaryError](err)
	return ok
}

func isRateLimited(err error) bool {
	_, ok := errors.AsType[*errRateLimited](err)
	return ok
}

func isHomeUnreachable(err error) bool {
	_, ok := errors.AsType[*errHomeUnreachable](err)
	return ok
}

func isHomeOutcomeUnknown(err error) bool {
	_, ok := errors.AsType[*errHomeOutcomeUnknown](err)
	return ok
}

func isPrimaryUnreachable(err error) bool {
	_, ok := errors.AsType[*primaryUnreachableError](err)
	return ok
}

// describeNotPrimary tells the caller where to make the change.
func describeNotPrimary(err error) string {
	np, _ := errors.AsType[*fsm.NotPrimaryError](err)
	return fmt.Sprintf("key %s is a replica; make lifecycle changes in its primary zone %s", np.KeyID, np.PrimaryZone)
}

// errorTable is the one mapping of errors to HTTP answers. The first
// matching row wins, so ErrDecrypt comes first: a failed decrypt always
// reads the same, whatever else the error wraps (no oracle).
var errorTable = []errorRule{
	{match: is(kzcrypto.ErrDecrypt), status: http.StatusUnprocessableEntity, code: wire.CodeDecryptFailed, message: "decryption failed"},

	{match: is(errBadRequest), status: http.StatusBadRequest, code: wire.CodeInvalidArgument},
	{match: is(keys.ErrInvalidArgument), status: http.StatusBadRequest, code: wire.CodeInvalidArgument},
	{match: is(fsm.ErrInvalidCommand), status: http.StatusBadRequest, code: wire.CodeInvalidArgument},
	{match: is(kzcrypto.ErrContext), status: http.StatusBadRequest, code: wire.CodeInvalidArgument},
	{match: is(kzcrypto.ErrDataKeySize), status: http.StatusBadRequest, code: wire.CodeInvalidArgument},
	{match: is(kzcrypto.ErrInvalidKeyID), status: http.StatusBadRequest, code: wire.CodeInvalidArgument},
	{match: is(fsm.ErrImportTokenInvalid), status: http.StatusBadRequest, code: wire.CodeImportTokenInvalid, message: fsm.ErrImportTokenInvalid.Error()[len("fsm: "):]},
	{match: is(fsm.ErrImportTokenExpired), status: http.StatusBadRequest, code: wire.CodeImportTokenExpired, message: fsm.ErrImportTokenExpired.Error()[len("fsm: "):]},
	{match: is(keys.ErrImportUnseal), status: http.StatusBadRequest, code: wire.CodeImportUnseal, message: keys.ErrImportUnseal.Error()},
	{match: is(keys.ErrRawImportRefused), status: http.StatusForbidden, code: wire.CodeRawImportRefused, message: keys.ErrRawImportRefused.Error()},

	{match: is(snapshot.ErrInvalid), status: http.StatusBadRequest, code: wire.CodeInvalidSnapshot},

	{match: is(errUnauthorized), status: http.StatusUnauthorized, code: wire.CodeUnauthorized},
	{match: is(keys.ErrUnauthenticated), status: http.StatusUnauthorized, code: wire.CodeUnauthorized, message: errUnauthorized.Error()},
	{match: is(errForbidden), status: http.StatusForbidden, code: wire.CodeForbidden},
	{match: is(keys.ErrKeyNotAllowed), status: http.StatusForbidden, code: wire.CodeForbidden},

	{match: is(fsm.ErrKeyNotFound), status: http.StatusNotFound, code: wire.CodeKeyNotFound},
	{match: is(fsm.ErrOrganizationNotFound), status: http.StatusNotFound, code: wire.CodeOrganizationNotFound},
	{match: is(fsm.ErrTokenNotFound), status: http.StatusNotFound, code: wire.CodeTokenNotFound},
	{match: is(cluster.ErrUnknownPeer), status: http.StatusNotFound, code: wire.CodePeerNotFound},
	{match: is(errRouteNotFound), status: http.StatusNotFound, code: wire.CodeNotFound},
	{match: is(errMethodNotAllowed), status: http.StatusMethodNotAllowed, code: wire.CodeMethodNotAllowed},

	{match: is(fsm.ErrOrganizationExists), status: http.StatusConflict, code: wire.CodeOrganizationExists},
	{match: is(fsm.ErrQuotaExceeded), status: http.StatusConflict, code: wire.CodeQuotaExceeded},
	{match: is(fsm.ErrDefaultKey), status: http.StatusConflict, code: wire.CodeDefaultKey},
	{match: is(fsm.ErrKeyExists), status: http.StatusConflict, code: wire.CodeKeyExists},
	{match: is(fsm.ErrVersionConflict), status: http.StatusConflict, code: wire.CodeVersionConflict},
	{match: is(fsm.ErrKeyProtected), status: http.StatusConflict, code: wire.CodeKeyProtected},
	{match: isTransition, status: http.StatusConflict, code: wire.CodeInvalidState},
	{match: isPrimaryUnreachable, status: http.StatusConflict, code: wire.CodeNotPrimary},
	{match: isNotPrimary, status: http.StatusConflict, code: wire.CodeNotPrimary, describe: describeNotPrimary},
	{match: is(fsm.ErrRotationPending), status: http.StatusConflict, code: wire.CodeRotationPending},
	{match: is(fsm.ErrNotExternal), status: http.StatusConflict, code: wire.CodeOriginNotExternal},
	{match: is(fsm.ErrImportTokenUsed), status: http.StatusConflict, code: wire.CodeImportTokenUsed, message: fsm.ErrImportTokenUsed.Error()[len("fsm: "):]},
	{match: is(keys.ErrKeyDisabled), status: http.StatusConflict, code: wire.CodeKeyDisabled},
	{match: is(cluster.ErrLastVoter), status: http.StatusConflict, code: wire.CodeLastVoter},
	{match: is(cluster.ErrRemoveLeader), status: http.StatusConflict, code: wire.CodePeerIsLeader},
	{match: is(cluster.ErrSnapshotMismatch), status: http.StatusConflict, code: wire.CodeSnapshotMismatch},
	{match: is(fsm.ErrRevisionMismatch), status: http.StatusPreconditionFailed, code: wire.CodeRevisionMismatch},

	{match: is(kzcrypto.ErrPayloadTooLarge), status: http.StatusRequestEntityTooLarge, code: wire.CodePayloadTooLarge},
	{match: is(errBodyTooLarge), status: http.StatusRequestEntityTooLarge, code: wire.CodePayloadTooLarge},
	{match: is(snapshot.ErrTooLarge), status: http.StatusRequestEntityTooLarge, code: wire.CodePayloadTooLarge},

	{match: isRateLimited, status: http.StatusTooManyRequests, code: wire.CodeRateLimited},

	// The caller went away; nobody reads the answer, but the log should
	// not call it an internal error.
	{match: is(context.Canceled), status: 499, code: wire.CodeCanceled, message: "request canceled"},

	{match: is(cluster.ErrNoLeader), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, message: "no raft leader, retry later", retryAfter: true},
	{match: is(cluster.ErrLeadershipLost), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, message: "leadership lost while committing: the outcome is unknown, retry with the same Idempotency-Key", retryAfter: true},
	{match: is(cluster.ErrNotCaughtUp), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, message: "this node has not caught up with the index the request asks for, retry later", retryAfter: true},
	{match: is(errAuthCatchingUp), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retryAfter: true},
	{match: is(errAuditUnavailable), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retryAfter: true},
	{match: isHomeUnreachable, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retryAfter: true},
	{match: isHomeOutcomeUnknown, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retryAfter: true},
	{match: is(keys.ErrNotHomeZone), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retryAfter: true},
	{match: is(errNodeRemoved), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable},
	{match: is(errForwardOutcomeUnknown), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retryAfter: true},
	{match: is(cluster.ErrShutdown), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, message: "node is shutting down, retry on another node", retryAfter: true},
	// A change-log batch that does not follow what this zone applied: the
	// puller pulls again, so it is transient and nothing for the caller.
	{match: is(fsm.ErrChangeGap), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, message: "replication between zones is catching up, retry later", retryAfter: true},
	{match: is(cluster.ErrTransferFailed), status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, message: "leadership transfer did not complete, retry later", retryAfter: true},
	{match: is(cluster.ErrTimeout), status: http.StatusGatewayTimeout, code: wire.CodeTimeout, message: "timed out waiting for raft"},
	{match: is(context.DeadlineExceeded), status: http.StatusGatewayTimeout, code: wire.CodeTimeout, message: "request timed out"},
}

// internalRule answers every error the table does not know.
var internalRule = errorRule{status: http.StatusInternalServerError, code: wire.CodeInternal, message: "internal error"}

func ruleFor(err error) errorRule {
	for _, r := range errorTable {
		if r.match(err) {
			return r
		}
	}
	return internalRule
}

// renderErrors turns the last error a handler or middleware attached with
// c.Error into the JSON error answer, and logs it: 4xx at Debug, transient
// 5xx at Warn, internal errors at Error (the only place their text goes).
func (s *server) renderErrors(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 {
		return
	}
	err := c.Errors.Last().Err
	if c.Writer.Written() {
		s.logger.Error("error after the response was written", "route", route(c), "error", err)
		return
	}
	r := ruleFor(err)
	msg := r.message
	switch {
	case r.describe != nil:
		msg = r.describe(err)
	case msg == "":
		msg = err.Error()
	}
	switch {
	case r.status == http.StatusInternalServerError:
		s.logger.Error("request failed", "method", c.Request.Method, "route", route(c), "error", err)
	case r.status >= 500:
		s.logger.Warn("request failed", "method", c.Request.Method, "route", route(c), "status", r.status, "error", err)
	default:
		s.logger.Debug("request refused", "method", c.Request.Method, "route", route(c), "status", r.status, "error", err)
	}
	if r.retryAfter {
		c.Header("Retry-After", "1")
	}
	writeError(c, r.status, r.code, msg)
}

func writeError(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, wire.ErrorResponse{Error: wire.ErrorBody{Code: code, Message: msg}})
}
