package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
	kzcrypto "github.com/keyzone/keyzone/crypto"
	"github.com/keyzone/keyzone/fsm"
)

// Proposer commits commands through the zone's Raft group and gives reads
// a consistent view. *cluster.Node implements it.
type Proposer interface {
	Propose(ctx context.Context, cmd fsm.Command) (fsm.Result, uint64, error)
	// ConsistentRead returns once the local state reflects every write
	// acknowledged in the zone before the call.
	ConsistentRead(ctx context.Context) error
}

// Config configures the key service.
type Config struct {
	Zone     string
	REK      *kzcrypto.REK
	FSM      *fsm.FSM
	Proposer Proposer
	Logger   hclog.Logger

	// Rand supplies key ids, key material and nonces (crypto/rand when nil).
	Rand io.Reader
	// Now is the proposer's clock (time.Now when nil). Apply never reads
	// a clock: every time reaches the FSM through a command.
	Now func() time.Time

	// MaxPayload limits plaintexts (DefaultMaxPayload when 0).
	MaxPayload int
	// Deletion windows accepted by schedule-deletion.
	MinDeletionWindow     time.Duration
	MaxDeletionWindow     time.Duration
	DefaultDeletionWindow time.Duration
	// MinRotationPeriod is the shortest automatic rotation period.
	MinRotationPeriod time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered.
	IdempotencyTTL time.Duration
	// CatchUpWait bounds how long crypto waits for this node to catch up
	// with the leader when it does not know a key or version.
	CatchUpWait time.Duration
	// TickInterval paces the leader's scheduler (rotations, purges).
	TickInterval time.Duration
	// KnownZones lists the zones of the deployment (every zone the gossip
	// pool has shown); replica zones must be among them. Nil accepts any
	// name.
	KnownZones func() []string
	// ImportTokenTTL is how long import parameters stay usable
	// (DefaultImportTokenTTL when 0).
	ImportTokenTTL time.Duration
	// AllowRawImport accepts unsealed key material on import, over TLS only.
	AllowRawImport bool
	// HomeZone is the zone where organizations and tokens are written
	// (the node's own zone when empty).
	HomeZone string
	// OrgKeyQuota is the key quota of an organization created without
	// one (fsm.DefaultKeyQuota when 0).
	OrgKeyQuota int
	// LiveZones lists the zones with a node alive in the gossip pool now:
	// a forced takeover is refused while the primary zone is among them.
	// Nil means unknown: takeovers are refused.
	LiveZones func() []string
}

// DefaultConfig returns the production bounds: deletion windows of 7 to
// 30 days (7 by default, like AWS KMS), rotation periods of at least a
// day, idempotency keys kept 24 hours.
func DefaultConfig() Config {
	return Config{
		MaxPayload:            kzcrypto.DefaultMaxPayload,
		MinDeletionWindow:     7 * 24 * time.Hour,
		MaxDeletionWindow:     30 * 24 * time.Hour,
		DefaultDeletionWindow: 7 * 24 * time.Hour,
		MinRotationPeriod:     24 * time.Hour,
		IdempotencyTTL:        24 * time.Hour,
		CatchUpWait:           2 * time.Second,
		TickInterval:          time.Second,
	}
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if c.REK == nil {
		errs = append(errs, errors.New("root key is required"))
	}
	if c.FSM == nil || c.Proposer == nil {
		errs = append(errs, errors.New("fsm and proposer are required"))
	}
	if c.Zone == "" {
		errs = append(errs, errors.New("zone is required"))
	}
	if c.MinDeletionWindow <= 0 || c.MaxDeletionWindow < c.MinDeletionWindow {
		errs = append(errs, fmt.Errorf("deletion window bounds %s..%s are invalid", c.MinDeletionWindow, c.MaxDeletionWindow))
	}
	if c.DefaultDeletionWindow < c.MinDeletionWindow || c.DefaultDeletionWindow > c.MaxDeletionWindow {
		errs = append(errs, fmt.Errorf("default deletion window %s is outside %s..%s", c.DefaultDeletionWindow, c.MinDeletionWindow, c.MaxDeletionWindow))
	}
	if c.MinRotationPeriod <= 0 {
		errs = append(errs, errors.New("minimum rotation period must be positive"))
	}
	return errors.Join(errs...)
}

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = d.MaxPayload
	}
	if c.MinDeletionWindow == 0 {
		c.MinDeletionWindow = d.MinDeletionWindow
	}
	if c.MaxDeletionWindow == 0 {
		c.MaxDeletionWindow = d.MaxDeletionWindow
	}
	if c.DefaultDeletionWindow == 0 {
		c.DefaultDeletionWindow = d.DefaultDeletionWindow
	}
	if c.MinRotationPeriod == 0 {
		c.MinRotationPeriod = d.MinRotationPeriod
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = d.IdempotencyTTL
	}
	if c.CatchUpWait == 0 {
		c.CatchUpWait = d.CatchUpWait
	}
	if c.TickInterval == 0 {
		c.TickInterval = d.TickInterval
	}
	if c.HomeZone == "" {
		c.HomeZone = c.Zone
	}
	if c.OrgKeyQuota == 0 {
		c.OrgKeyQuota = fsm.DefaultKeyQuota
	}
}

// Service holds the use cases of keys: it validates requests, decides
// ids, times and wrapped material, proposes lifecycle commands, and
// serves crypto from the local state.
type Service struct {
	cfg       Config
	logger    hclog.Logger
	fsm       *fsm.FSM
	proposer  Proposer
	rek       *kzcrypto.REK
	cipher    *kzcrypto.Cipher
	materials *materialCache
	catchUp   sharedCatchUp
}

// New builds a Service.
func New(cfg Config) (*Service, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("keys config: %w", err)
	}
	return &Service{
		cfg:       cfg,
		logger:    cfg.Logger.Named("keys"),
		fsm:       cfg.FSM,
		proposer:  cfg.Proposer,
		rek:       cfg.REK,
		cipher:    &kzcrypto.Cipher{Rand: cfg.Rand, MaxPayload: cfg.MaxPayload},
		materials: newMaterialCache(),
	}, nil
}

func (s *Service) now() int64 { return s.cfg.Now().UnixNano() }

// propose commits a command and turns a refusal by Apply into an error.
func (s *Service) propose(ctx context.Context, t fsm.CommandType, payload any) (*fsm.Key, error) {
	cmd, err := fsm.NewCommand(t, payload)
	if err != nil {
		return nil, err
	}
	res, _, err := s.proposer.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Key, nil
}

// newVersion draws fresh material for version n of key id and wraps it
// under the REK. The plaintext material never leaves this function.
func (s *Service) newVersion(id kzcrypto.KeyID, n uint32, now int64) (fsm.Version, error) {
	material, err := kzcrypto.NewVersionMaterial(s.cfg.Rand, id, n)
	if err != nil {
		return fsm.Version{}, fmt.Errorf("new key material: %w", err)
	}
	wrapped, err := s.rek.Wrap(s.cfg.Rand, id, n, material)
	clear(material)
	if err != nil {
		return fsm.Version{}, fmt.Errorf("wrap key material: %w", err)
	}
	return fsm.Version{Number: n, Wrapped: wrapped, RekID: s.rek.ID(), CreatedAt: now, State: fsm.VersionStateEnabled}, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidArgument)
}
