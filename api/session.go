package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/cluster"
	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/zone"
)

// Session consistency headers. A key response carries the index of the
// answering zone's Raft log that covers the key's state, qualified by the
// zone ("zone-a:123"; a bare number when the API has no zone). A client
// that sends back the indexes it has seen, comma-separated, is served by
// any node of a zone only once that node has applied its zone's index: it
// reads its own writes (a rotation, then an encryption on another node,
// uses the new version) while crypto stays local. Indexes of other zones
// are ignored: across zones, replication is asynchronous.
const (
	headerIndex    = "X-Keyzone-Index"
	headerMinIndex = "X-Keyzone-Min-Index"
	maxIndexWait   = 5 * time.Second
	maxIndexHeader = 1024
)

// headerForwardedFrom marks a lifecycle request a replica zone forwarded to
// the key's primary zone; it is not forwarded again.
const headerForwardedFrom = "X-Keyzone-Forwarded-From"

// ZoneForwarder sends a request on to a node of another zone and relays
// its answer. It returns ErrZoneUnreachable, before writing anything, when
// no node of the zone answers.
type ZoneForwarder interface {
	Forward(w http.ResponseWriter, r *http.Request, zone string, body []byte) error
}

// ErrZoneUnreachable is returned by a ZoneForwarder that reached no node.
var ErrZoneUnreachable = zone.ErrUnreachable

// errForwardOutcomeUnknown: the primary zone may have received the
// change, but its answer was lost.
var errForwardOutcomeUnknown = errors.New("the primary zone did not answer the forwarded change: the outcome is unknown, retry with the same Idempotency-Key")

// sessionIndex is the index a key response carries: on the key's primary
// zone its revision (the Raft index of its last change); on a replica the
// node's applied index, which covers the replica's last update.
func (s *server) sessionIndex(k *fsm.Key) string {
	idx := k.Revision
	if k.IsReplicaIn(s.zone) && s.appliedIndex != nil {
		idx = s.appliedIndex()
	}
	if s.zone == "" {
		return strconv.FormatUint(idx, 10)
	}
	return s.zone + ":" + strconv.FormatUint(idx, 10)
}

// minIndex makes the request wait until this node has applied the index
// the client saw from this zone.
func (s *server) minIndex(c *gin.Context) {
	v := c.GetHeader(headerMinIndex)
	if v == "" {
		c.Next()
		return
	}
	idx, err := s.parseMinIndex(v)
	if err != nil {
		c.Error(err)
		c.Abort()
		return
	}
	if idx > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), maxIndexWait)
		defer cancel()
		if err := s.cluster.WaitApplied(ctx, idx); err != nil {
			c.Error(cluster.ErrNotCaughtUp)
			c.Abort()
			return
		}
	}
	c.Next()
}

// parseMinIndex returns this zone's index from "zone:idx,zone:idx" (a bare
// number counts as this zone's), or 0 when the client saw none.
func (s *server) parseMinIndex(v string) (uint64, error) {
	if len(v) > maxIndexHeader {
		return 0, badRequest("%s is longer than %d bytes", headerMinIndex, maxIndexHeader)
	}
	var want uint64
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		zone, num, qualified := strings.Cut(part, ":")
		if !qualified {
			zone, num = s.zone, part
		}
		idx, err := strconv.ParseUint(num, 10, 64)
		if err != nil || zone == "" && s.zone != "" {
			return 0, badRequest("%s %q is not a list of zone:index", headerMinIndex, truncateHeader(v))
		}
		if zone == s.zone {
			want = max(want, idx)
		}
	}
	return want, nil
}

func truncateHeader(v string) string {
	if len(v) > 32 {
		return v[:32] + "..."
	}
	return v
}

// forwardToPrimary sends a lifecycle request that this zone refused
// because the key is a replica here on to the key's primary zone, and
// relays the answer: clients may make lifecycle changes through any zone.
// A request forwarded once is not forwarded again; when the primary zone
// is unreachable the answer is 409 not_primary naming it, while crypto
// keeps working here.
func (s *server) forwardToPrimary(c *gin.Context) {
	if s.forwarder == nil || c.GetHeader(headerForwardedFrom) != "" {
		c.Next()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody))
	if err != nil {
		c.Error(errBodyTooLarge)
		c.Abort()
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	c.Next()
	if len(c.Errors) == 0 || c.Writer.Written() {
		return
	}
	np, ok := errors.AsType[*fsm.NotPrimaryError](c.Errors.Last().Err)
	if !ok {
		return
	}
	c.Request.Header.Set(headerForwardedFrom, s.zone)
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	err = s.forwarder.Forward(c.Writer, c.Request, np.PrimaryZone, body)
	if err == nil {
		c.Errors = c.Errors[:0]
		return
	}
	s.logger.Warn("forward to primary zone failed", "zone", np.PrimaryZone, "key_id", np.KeyID, "error", err)
	c.Errors = c.Errors[:0]
	switch {
	case errors.Is(err, ErrZoneUnreachable):
		// No node got it: nothing changed.
		c.Error(&primaryUnreachableError{np})
	case c.Writer.Written():
		// The answer broke off while relayed; the caller sees it cut.
	default:
		c.Error(errForwardOutcomeUnknown)
	}
}

// primaryUnreachableError is a lifecycle change of a replica whose
// primary zone could not be reached.
type primaryUnreachableError struct{ np *fsm.NotPrimaryError }

func (e *primaryUnreachableError) Error() string {
	return "key " + e.np.KeyID + " is a replica and its primary zone " + e.np.PrimaryZone +
		" is unreachable; retry later (crypto keeps working in this zone)"
}

func (e *primaryUnreachableError) Unwrap() error { return e.np }
