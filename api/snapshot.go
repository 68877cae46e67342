package api

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
)

// snapshotSave streams the zone's snapshot archive. Its length is sent
// when known, so a client can show progress; an archive cut short by a
// failure after the headers fails its own checks on restore.
func (s *server) snapshotSave(c *gin.Context) {
	b, err := s.cluster.SaveSnapshot(c.Request.Context())
	if err != nil {
		c.Error(err)
		return
	}
	defer b.Close()
	name := "keyzone"
	if s.zone != "" {
		name += "-" + s.zone
	}
	name += "-" + time.Now().UTC().Format("20060102T150405Z") + ".snap"
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	if b.Size >= 0 {
		c.Header("Content-Length", strconv.FormatInt(b.Size, 10))
	}
	c.Status(http.StatusOK)
	c.Header("Content-Type", "application/octet-stream")
	if _, err := io.Copy(c.Writer, b); err != nil {
		s.logger.Warn("sending a snapshot failed", "error", err)
	}
}

// snapshotRestore replaces the zone's state with the uploaded archive.
// The body is not under the API's JSON limit: the archive is checked as
// it streams, and its state is bounded by the node's snapshot limit.
func (s *server) snapshotRestore(c *gin.Context) {
	m, err := s.cluster.RestoreSnapshot(c.Request.Context(), c.Request.Body)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wire.SnapshotMeta{
		Format: m.Format, CreatedAt: m.CreatedAt, Zone: m.Zone, NodeID: m.NodeID, RekID: m.RekID,
		Index: m.Index, Term: m.Term, StateFormat: m.StateFormat, StateSize: m.StateSize,
		StateSHA256: m.StateSHA256, Keys: m.Keys,
	})
}
