package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/snapshot"
)

const (
	internalSnapshot        = "/v1/internal/snapshot"
	internalSnapshotRestore = "/v1/internal/snapshot/restore"

	internalCodeInvalidSnapshot  = "invalid_snapshot"
	internalCodeSnapshotMismatch = "snapshot_mismatch"
	internalCodeSnapshotTooLarge = "snapshot_too_large"

	// DefaultMaxSnapshotBytes bounds the state of a restored archive: far
	// above any real zone (a million keys take a few hundred MiB), it
	// keeps a hostile upload from filling the disk.
	DefaultMaxSnapshotBytes int64 = 16 << 30

	// restoreTimeout bounds handing a restored state to Raft.
	restoreTimeout = 5 * time.Minute
)

// ErrSnapshotMismatch: the archive is well formed but belongs to another
// deployment (another root key) or another zone.
var ErrSnapshotMismatch = errors.New("cluster: snapshot belongs elsewhere")

// snapshotRefusal carries a refusal's own message, which tells the operator
// what to fix, across a forwarded call.
type snapshotRefusal struct {
	kind error
	msg  string
}

func (e *snapshotRefusal) Error() string { return e.msg }
func (e *snapshotRefusal) Unwrap() error { return e.kind }

// Backup is a snapshot archive ready to be read; Close releases it.
type Backup struct {
	io.ReadCloser
	// Size is the archive's length in bytes, or -1 when not known.
	Size int64
}

// SaveSnapshot returns an archive (see package snapshot) of the zone's
// state as of a consistent read: every write acknowledged anywhere in the
// zone before the call is in it. Key versions stay wrapped under the root
// key inside. Any node accepts it and streams the leader's archive.
func (n *Node) SaveSnapshot(ctx context.Context) (*Backup, error) {
	deadline := time.Now().Add(n.cfg.LeaderWait)
	for {
		var b *Backup
		var err error
		if n.raft.State() == raft.Leader {
			b, err = n.saveLocal()
		} else if leader, ok := n.leaderMember(); !ok {
			err = ErrNoLeader
		} else {
			b, err = n.fetchBackup(ctx, leader)
		}
		if !errors.Is(err, errNotLeader) && !errors.Is(err, ErrNoLeader) {
			return b, err
		}
		if err := n.waitForLeader(ctx, deadline); err != nil {
			return nil, err
		}
	}
}

// saveLocal writes the state to a temporary file, then the archive to
// another, so that the archive's size is known before it is sent.
func (n *Node) saveLocal() (*Backup, error) {
	if _, err := n.leaderReadIndex(); err != nil {
		return nil, err
	}
	state, err := n.tempFile("backup-state")
	if err != nil {
		return nil, err
	}
	defer removeTemp(state)
	h := sha256.New()
	counter := &countingWriter{w: io.MultiWriter(state, h)}
	info, err := n.fsm.Backup(counter)
	if err != nil {
		return nil, fmt.Errorf("back up state: %w", err)
	}
	if _, err := state.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	meta := snapshot.Meta{
		CreatedAt: time.Now().UTC(), Zone: n.cfg.Zone, NodeID: n.cfg.NodeID, RekID: n.cfg.RekID,
		Index: info.Index, Term: info.Term, StateFormat: fsm.SnapshotFormat,
		StateSize: counter.n, StateSHA256: hex.EncodeToString(h.Sum(nil)), Keys: info.Keys,
	}
	archive, err := n.tempFile("backup")
	if err != nil {
		return nil, err
	}
	if err := snapshot.Write(archive, meta, state, n.snapshotMACKey()); err != nil {
		removeTemp(archive)
		return nil, fmt.Errorf("write snapshot archive: %w", err)
	}
	size, err := archive.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = archive.Seek(0, io.SeekStart)
	}
	if err != nil {
		removeTemp(archive)
		return nil, err
	}
	n.logger.Info("snapshot saved", "index", meta.Index, "keys", meta.Keys, "bytes", size)
	return &Backup{ReadCloser: tempReader{archive}, Size: size}, nil
}

// fetchBackup streams the leader's archive.
func (n *Node) fetchBackup(ctx context.Context, leader Member) (*Backup, error) {
	resp, err := n.streamPeer(ctx, leader, http.MethodGet, internalSnapshot, nil)
	if err != nil {
		return nil, err
	}
	return &Backup{ReadCloser: resp.Body, Size: resp.ContentLength}, nil
}

// RestoreSnapshot replaces the zone's state with the archive read from r,
// after checking it: format, checksums, the MAC under this deployment's
// root key, the root key id and the zone. Any node accepts it and streams
// it to the leader, which hands it to Raft: the leader restores it, and
// followers get it as a snapshot install. In a multi-zone deployment the
// zone's change log then moves above any sequence the other zones have
// seen, so that they take the restored state of its keys.
func (n *Node) RestoreSnapshot(ctx context.Context, r io.Reader) (snapshot.Meta, error) {
	for {
		if n.raft.State() == raft.Leader {
			return n.restoreLocal(ctx, r)
		}
		leader, ok := n.leaderMember()
		if !ok {
			// The body can be read only once: wait for a leader here
			// rather than retry after sending it.
			if err := n.waitForLeader(ctx, time.Now().Add(n.cfg.LeaderWait)); err != nil {
				return snapshot.Meta{}, err
			}
			if _, ok := n.leaderMember(); !ok && n.raft.State() != raft.Leader {
				return snapshot.Meta{}, ErrNoLeader
			}
			continue
		}
		resp, err := n.streamPeer(ctx, leader, http.MethodPost, internalSnapshotRestore, r)
		if err != nil {
			return snapshot.Meta{}, err
		}
		defer resp.Body.Close()
		var meta snapshot.Meta
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil {
			return snapshot.Meta{}, fmt.Errorf("restore on %s: malformed answer: %w", leader.ID, err)
		}
		return meta, nil
	}
}

func (n *Node) restoreLocal(ctx context.Context, r io.Reader) (snapshot.Meta, error) {
	n.restoreMu.Lock()
	defer n.restoreMu.Unlock()
	state, err := n.tempFile("restore-state")
	if err != nil {
		return snapshot.Meta{}, err
	}
	defer removeTemp(state)
	meta, err := snapshot.Read(r, state, snapshot.ReadOptions{
		MACKey:    n.snapshotMACKey(),
		MaxState:  n.maxSnapshotBytes(),
		CheckMeta: n.checkSnapshotMeta,
	})
	if err != nil {
		return snapshot.Meta{}, err
	}
	if _, err := state.Seek(0, io.SeekStart); err != nil {
		return snapshot.Meta{}, err
	}
	if _, err := fsm.CheckSnapshot(state, n.cfg.Zone); err != nil {
		return snapshot.Meta{}, &snapshotRefusal{kind: snapshot.ErrInvalid, msg: fmt.Sprintf("invalid snapshot: the state does not read back: %v", err)}
	}
	if _, err := state.Seek(0, io.SeekStart); err != nil {
		return snapshot.Meta{}, err
	}
	n.logger.Warn("restoring the zone from a snapshot", "index", meta.Index, "term", meta.Term,
		"keys", meta.Keys, "taken_on", meta.NodeID, "taken_at", meta.CreatedAt)
	err = n.raft.Restore(&raft.SnapshotMeta{
		Version: raft.SnapshotVersionMax, Index: meta.Index, Term: meta.Term, Size: meta.StateSize,
	}, state, restoreTimeout)
	if err != nil {
		return snapshot.Meta{}, fmt.Errorf("restore snapshot: %w", mapRaftError(err))
	}
	// The restored log may hand out change sequences the other zones
	// have already applied; moving above the current time in
	// microseconds puts it above every sequence handed out before (a
	// zone's log does not grow by a million entries a second). Applied
	// in a single zone too, it moves the applied index past the restore.
	var above uint64
	if n.cfg.Zone != "" {
		above = max(n.fsm.ChangeSeq(), uint64(time.Now().UnixMicro()))
	}
	cmd, err := fsm.NewCommand(fsm.CmdRenumberChanges, fsm.RenumberChangesV1{Above: above})
	if err != nil {
		return snapshot.Meta{}, err
	}
	if _, _, err := n.Propose(ctx, cmd); err != nil {
		// The state is restored; the other zones catch up with the next
		// change of each key.
		n.logger.Error("renumbering the change log after a restore failed", "error", err)
	}
	n.logger.Info("zone restored from a snapshot", "index", meta.Index, "keys", meta.Keys)
	return meta, nil
}

// checkSnapshotMeta refuses an archive of another deployment or zone
// before its state is read.
func (n *Node) checkSnapshotMeta(m snapshot.Meta) error {
	if m.RekID != n.cfg.RekID {
		return &snapshotRefusal{kind: ErrSnapshotMismatch, msg: fmt.Sprintf(
			"the snapshot was made under root key %s, this zone has root key %s: restore it into a deployment started with that root key", m.RekID, n.cfg.RekID)}
	}
	if m.Zone != n.cfg.Zone {
		return &snapshotRefusal{kind: ErrSnapshotMismatch, msg: fmt.Sprintf(
			"the snapshot is of zone %q, this node is in zone %q: a zone restores only its own snapshots", m.Zone, n.cfg.Zone)}
	}
	if !fsm.ReadsSnapshotFormat(m.StateFormat) {
		return &snapshotRefusal{kind: snapshot.ErrInvalid, msg: fmt.Sprintf(
			"invalid snapshot: state format %d, this node reads formats 1 to %d", m.StateFormat, fsm.SnapshotFormat)}
	}
	return nil
}

// snapshotMACKey authenticates archives. The internal token is already a
// secret derived from the root key for this deployment only; the archive
// format separates its use with its own label.
func (n *Node) snapshotMACKey() []byte { return []byte(n.cfg.InternalToken) }

func (n *Node) maxSnapshotBytes() int64 {
	if n.cfg.MaxSnapshotBytes > 0 {
		return n.cfg.MaxSnapshotBytes
	}
	return DefaultMaxSnapshotBytes
}

// removeStaleSnapshotFiles removes the temporary files a previous run of
// this node left in its data dir.
func (n *Node) removeStaleSnapshotFiles() {
	for _, prefix := range []string{"backup", "restore-state"} {
		stale, _ := filepath.Glob(filepath.Join(n.cfg.DataDir, prefix+"-*.tmp"))
		for _, f := range stale {
			if err := os.Remove(f); err == nil {
				n.logger.Info("removed a temporary snapshot file left by a previous run", "file", filepath.Base(f))
			}
		}
	}
}

func (n *Node) tempFile(prefix string) (*os.File, error) {
	f, err := os.CreateTemp(n.cfg.DataDir, prefix+"-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("snapshot: temporary file: %w", err)
	}
	return f, nil
}

func removeTemp(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// tempReader removes its file when closed.
type tempReader struct{ f *os.File }

func (t tempReader) Read(p []byte) (int, error) { return t.f.Read(p) }
func (t tempReader) Close() error {
	removeTemp(t.f)
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n += int64(k)
	return k, err
}

// streamPeer calls a peer's internal route with a streamed body and
// returns its 200 answer for the caller to read and close; any other
// answer becomes the error it carries.
func (n *Node) streamPeer(ctx context.Context, peer Member, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(peer.APIAddress, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", peer.ID, err)
	}
	req.Header.Set("Authorization", "Bearer "+n.cfg.InternalToken)
	resp, err := n.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" && body == nil {
			return nil, errNotLeader
		}
		return nil, fmt.Errorf("call %s: %w", peer.ID, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
	switch e.Code {
	case internalCodeNotLeader:
		if body != nil {
			// The body is spent: the caller can't resend it.
			return nil, ErrLeadershipLost
		}
		return nil, errNotLeader
	case internalCodeShutdown:
		return nil, ErrShutdown
	case internalCodeTimeout:
		return nil, ErrTimeout
	case internalCodeLeadershipLost:
		return nil, ErrLeadershipLost
	case internalCodeInvalidSnapshot:
		return nil, &snapshotRefusal{kind: snapshot.ErrInvalid, msg: e.Message}
	case internalCodeSnapshotMismatch:
		return nil, &snapshotRefusal{kind: ErrSnapshotMismatch, msg: e.Message}
	case internalCodeSnapshotTooLarge:
		return nil, &snapshotRefusal{kind: snapshot.ErrTooLarge, msg: e.Message}
	}
	return nil, fmt.Errorf("call %s: status %d", peer.ID, resp.StatusCode)
}

func (n *Node) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if n.raft.State() != raft.Leader {
		writeInternal(w, http.StatusConflict, internalError{Code: internalCodeNotLeader})
		return
	}
	b, err := n.saveLocal()
	if err != nil {
		n.writeSnapshotError(w, err)
		return
	}
	defer b.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(b.Size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, b); err != nil {
		n.logger.Warn("sending a snapshot to a peer failed", "error", err)
	}
}

func (n *Node) handleSnapshotRestore(w http.ResponseWriter, r *http.Request) {
	if n.raft.State() != raft.Leader {
		writeInternal(w, http.StatusConflict, internalError{Code: internalCodeNotLeader})
		return
	}
	meta, err := n.restoreLocal(r.Context(), r.Body)
	if err != nil {
		n.writeSnapshotError(w, err)
		return
	}
	writeInternal(w, http.StatusOK, meta)
}

func (n *Node) writeSnapshotError(w http.ResponseWriter, err error) {
	type coded struct {
		Code    string `json:"code"`
		Message string `json:"message,omitempty"`
	}
	for _, c := range []struct {
		err  error
		code string
	}{
		{snapshot.ErrInvalid, internalCodeInvalidSnapshot},
		{ErrSnapshotMismatch, internalCodeSnapshotMismatch},
		{snapshot.ErrTooLarge, internalCodeSnapshotTooLarge},
	} {
		if errors.Is(err, c.err) {
			writeInternal(w, http.StatusBadRequest, coded{Code: c.code, Message: err.Error()})
			return
		}
	}
	n.writeAdminResult(w, err)
}
