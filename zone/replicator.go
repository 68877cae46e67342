package zone

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/keyzone/keyzone/fsm"
)

// ChangesPath is the internal route a zone's change log is pulled from.
const ChangesPath = "/v1/internal/changes"

// Peer is a node of some zone, as the gossip pool advertises it.
type Peer struct {
	ID         string
	Zone       string
	APIAddress string
}

// Directory lists the nodes of every zone (the gossip pool).
type Directory interface {
	Peers() []Peer
}

// Proposer commits commands through this zone's Raft group, and catches
// the local state up with the zone's leader.
type Proposer interface {
	Propose(ctx context.Context, cmd fsm.Command) (fsm.Result, uint64, error)
	ConsistentRead(ctx context.Context) error
}

// Config configures replication between zones.
type Config struct {
	Zone      string
	FSM       *fsm.FSM
	Proposer  Proposer
	Directory Directory
	// Token authenticates node-to-node calls, across zones too.
	Token string
	// TLS configures the pulls from nodes whose API address is https:
	// its RootCAs are the authorities trusted for their certificates,
	// nil meaning the system pool. The Replicator keeps a clone.
	TLS    *tls.Config
	Logger hclog.Logger
	Now    func() time.Time

	// PollWait is how long a pull waits on the remote side for a change.
	PollWait time.Duration
	// BatchSize bounds the entries of one pull.
	BatchSize int
	// RetryMin and RetryMax bound the back-off after a failed pull.
	RetryMin, RetryMax time.Duration
	// ScanInterval is how often the leader looks for new remote zones.
	ScanInterval time.Duration
}

func (c *Config) withDefaults() {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PollWait == 0 {
		c.PollWait = 20 * time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = time.Second
	}
}

// Replicator moves primary keys' changes between zones. Every node serves
// its zone's change log (Handler); the leader of each zone runs one puller
// per remote zone (LeaderTask), which long-polls any reachable node of
// that zone and proposes what it gets through this zone's Raft.
type Replicator struct {
	cfg    Config
	logger hclog.Logger
	http   *http.Client
	// closed ends the long-polls this node serves, so that a shutdown
	// does not wait for them.
	closed context.Context
	close  context.CancelFunc
}

// New returns a Replicator.
func New(cfg Config) (*Replicator, error) {
	cfg.withDefaults()
	if cfg.Zone == "" || cfg.FSM == nil || cfg.Proposer == nil || cfg.Directory == nil || cfg.Token == "" {
		return nil, errors.New("zone: config needs zone, fsm, proposer, directory and token")
	}
	closed, cancel := context.WithCancel(context.Background())
	return &Replicator{
		closed: closed,
		close:  cancel,
		cfg:    cfg,
		logger: cfg.Logger.Named("zone"),
		http: &http.Client{Transport: &http.Transport{
			TLSClientConfig:     cfg.TLS.Clone(),
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}},
	}, nil
}

// ChangesResponse is the answer of a pull: every entry of the compacted
// change log in (after, Upto].
type ChangesResponse struct {
	Zone    string            `json:"zone"`
	Upto    uint64            `json:"upto"`
	Entries []fsm.ChangeEntry `json:"entries"`
}

// Handler serves GET /v1/internal/changes?after=SEQ&zone=Z&wait=D. The
// caller (zone Z's leader) says with after how far it has applied this
// zone's log, and with refused which keys of it it did not take (it holds
// a newer primary of them): that is its acknowledgement, recorded
// through Raft when it is news. The answer waits up to wait (at most
// PollWait) for an entry after SEQ.
func (r *Replicator) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(r.cfg.Token)) != 1 {
			http.Error(w, `{"error":{"code":"unauthorized","message":"missing or invalid token"}}`, http.StatusUnauthorized)
			return
		}
		if req.Method != http.MethodGet {
			http.Error(w, `{"error":{"code":"method_not_allowed","message":"GET only"}}`, http.StatusMethodNotAllowed)
			return
		}
		q := req.URL.Query()
		after, err1 := strconv.ParseUint(q.Get("after"), 10, 64)
		wait, err2 := time.ParseDuration(q.Get("wait"))
		from := q.Get("zone")
		if err1 != nil || err2 != nil || wait < 0 || from == "" || from == r.cfg.Zone {
			http.Error(w, `{"error":{"code":"invalid_argument","message":"want after=SEQ, wait=DURATION and zone=ZONE (another zone)"}}`, http.StatusBadRequest)
			return
		}
		wait = min(wait, r.cfg.PollWait)
		ctx := req.Context()
		// A node cut off from its own leader would serve an old log
		// forever: it serves only once it has caught up with the leader,
		// and otherwise sends the puller to another node.
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := r.cfg.Proposer.ConsistentRead(rctx)
		cancel()
		if err != nil {
			http.Error(w, `{"error":{"code":"unavailable","message":"this node is not caught up with its zone's leader"}}`, http.StatusServiceUnavailable)
			return
		}
		var refused []string
		if v := q.Get("refused"); v != "" {
			refused = strings.Split(v, ",")
		}
		if len(refused) > 1000 {
			http.Error(w, `{"error":{"code":"invalid_argument","message":"too many refused keys"}}`, http.StatusBadRequest)
			return
		}
		if r.cfg.FSM.NeedsAck(from, after, refused) {
			r.ack(ctx, from, after, refused)
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		stop := context.AfterFunc(r.closed, cancel)
		err = r.cfg.FSM.WaitChanges(wctx, after)
		stop()
		cancel()
		if err != nil && ctx.Err() != nil {
			return // the puller went away
		}
		entries, upto := r.cfg.FSM.ChangesAfter(after, r.cfg.BatchSize)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ChangesResponse{Zone: r.cfg.Zone, Upto: upto, Entries: entries})
	})
}

// ack records through Raft that zone has applied our log up to seq. A
// failure only delays a promotion: the next pull acknowledges again.
func (r *Replicator) ack(ctx context.Context, zone string, seq uint64, refused []string) {
	cmd, err := fsm.NewCommand(fsm.CmdReplicaAck, fsm.ReplicaAckV1{Zone: zone, Seq: seq, Now: r.cfg.Now().UnixNano(), Disputed: refused})
	if err == nil {
		var res fsm.Result
		res, _, err = r.cfg.Proposer.Propose(ctx, cmd)
		if err == nil {
			err = res.Err
		}
	}
	if err != nil {
		r.logger.Warn("record replica ack failed", "zone", zone, "seq", seq, "error", err)
	}
}

// LeaderTask runs one puller per remote zone while this node leads, and
// starts pullers for zones that appear later. It returns when ctx is done.
func (r *Replicator) LeaderTask(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]bool{}
	t := time.NewTicker(r.cfg.ScanInterval)
	defer t.Stop()
	for {
		for _, z := range r.remoteZones() {
			if running[z] {
				continue
			}
			running[z] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.pullLoop(ctx, z)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Replicator) remoteZones() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range r.cfg.Directory.Peers() {
		if p.Zone != r.cfg.Zone && !seen[p.Zone] {
			seen[p.Zone] = true
			out = append(out, p.Zone)
		}
	}
	return out
}

// pullLoop long-polls the remote zone and applies what it gets, until ctx
// is done. It starts from the sequence this zone's state says it applied,
// so it resumes correctly after a leadership change or a restart.
func (r *Replicator) pullLoop(ctx context.Context, remote string) {
	log := r.logger.With("zone", remote)
	log.Info("pulling changes")
	backoff := r.cfg.RetryMin
	peer := 0
	for ctx.Err() == nil {
		err := r.pullOnce(ctx, remote, peer)
		if err == nil {
			backoff = r.cfg.RetryMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, fsm.ErrChangeGap) {
			log.Warn("pull failed", "error", err, "retry_in", backoff)
			peer++ // try another node of the zone
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, r.cfg.RetryMax)
	}
}

var errNoPeer = errors.New("zone: no reachable node")

func (r *Replicator) pullOnce(ctx context.Context, remote string, peerIdx int) error {
	var peers []Peer
	for _, p := range r.cfg.Directory.Peers() {
		if p.Zone == remote {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 {
		return fmt.Errorf("zone %s: %w", remote, errNoPeer)
	}
	p := peers[peerIdx%len(peers)]
	after := r.cfg.FSM.ReplicationOf(remote).Applied
	resp, err := r.fetch(ctx, p, after)
	if err != nil {
		return err
	}
	if resp.Upto <= after {
		if resp.Upto < after {
			// The remote log went backwards (restored from an older
			// snapshot): what this zone applied stays; newer entries
			// will come with sequences above it again.
			r.logger.Warn("remote change log is behind what was applied", "zone", remote, "upto", resp.Upto, "applied", after)
		}
		return nil
	}
	cmd, err := fsm.NewCommand(fsm.CmdApplyChanges, fsm.ApplyChangesV1{
		SourceZone: remote, After: after, Upto: resp.Upto, Entries: resp.Entries, Now: r.cfg.Now().UnixNano(),
	})
	if err != nil {
		return err
	}
	res, _, err := r.cfg.Proposer.Propose(ctx, cmd)
	if err != nil {
		return fmt.Errorf("apply changes of zone %s: %w", remote, err)
	}
	return res.Err
}

func (r *Replicator) fetch(ctx context.Context, p Peer, after uint64) (ChangesResponse, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}, "zone": {r.cfg.Zone}, "wait": {r.cfg.PollWait.String()}}
	if refused := r.cfg.FSM.ReplicationOf(p.Zone).Refused; len(refused) > 0 {
		// The keys this zone holds a newer primary of: the remote zone
		// must not count this pull as their acknowledgement.
		q.Set("refused", strings.Join(refused, ","))
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PollWait+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.APIAddress, "/")+ChangesPath+"?"+q.Encode(), nil)
	if err != nil {
		return ChangesResponse{}, err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	resp, err := r.http.Do(req)
	if err != nil {
		return ChangesResponse{}, fmt.Errorf("pull from %s: %w", p.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return ChangesResponse{}, fmt.Errorf("pull from %s: status %d: %s", p.ID, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var out ChangesResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&out); err != nil {
		return ChangesResponse{}, fmt.Errorf("pull from %s: decode: %w", p.ID, err)
	}
	if out.Zone != p.Zone {
		return ChangesResponse{}, fmt.Errorf("pull from %s: answered for zone %q, want %q", p.ID, out.Zone, p.Zone)
	}
	return out, nil
}

// Close ends the long-polls this node serves (they answer at once) and
// releases idle connections. Call it before shutting the API down.
func (r *Replicator) Close() {
	r.close()
	r.http.CloseIdleConnections()
}
