package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func resultRoundTrip(t *testing.T, r Result) Result {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var got Result
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal %s: %v", b, err)
	}
	return got
}

func TestResult_JSON_Sentinels(t *testing.T) {
	for _, s := range sentinelCodes {
		for _, err := range []error{s.err, fmt.Errorf("key k1: %w", s.err), fmt.Errorf("rotate: %w", fmt.Errorf("key k1: %w", s.err))} {
			t.Run(err.Error(), func(t *testing.T) {
				got := resultRoundTrip(t, Result{Err: err})
				if !errors.Is(got.Err, s.err) {
					t.Errorf("Err = %v, want errors.Is %v", got.Err, s.err)
				}
				if got.Err.Error() != err.Error() {
					t.Errorf("message %q, want %q", got.Err.Error(), err.Error())
				}
				for _, other := range sentinelCodes {
					if other.err != s.err && errors.Is(got.Err, other.err) {
						t.Errorf("Err also matches %v", other.err)
					}
				}
				if got.Key != nil {
					t.Errorf("Key = %+v, want nil", got.Key)
				}
			})
		}
	}
}

func TestResult_JSON_TransitionError(t *testing.T) {
	want := &TransitionError{KeyID: "k1", From: KeyStateDisabled, Op: OpRotate}
	for _, err := range []error{want, fmt.Errorf("rotate key k1: %w", want)} {
		got := resultRoundTrip(t, Result{Err: err})
		var te *TransitionError
		if !errors.As(got.Err, &te) || *te != *want {
			t.Errorf("Err = %#v, want %+v", got.Err, want)
		}
		for _, s := range sentinelCodes {
			if errors.Is(got.Err, s.err) {
				t.Errorf("TransitionError also matches %v", s.err)
			}
		}
	}
}

func TestResult_JSON_KeyAndUnknownError(t *testing.T) {
	f := newFSM(t)
	k := mustApply(t, f, CmdCreateKey, createKey("k1", orgA))
	got := resultRoundTrip(t, Result{Key: k})
	if got.Err != nil || got.Key == nil {
		t.Fatalf("Result = %+v", got)
	}
	a, _ := json.Marshal(got.Key)
	b, _ := json.Marshal(k)
	if string(a) != string(b) {
		t.Errorf("key %s, want %s", a, b)
	}

	// An error outside the contract becomes ErrInvalidCommand, message kept.
	got = resultRoundTrip(t, Result{Err: errors.New("boom")})
	if !errors.Is(got.Err, ErrInvalidCommand) || got.Err.Error() != "boom: "+ErrInvalidCommand.Error() {
		t.Errorf("Err = %v", got.Err)
	}
	if got := resultRoundTrip(t, Result{}); got != (Result{}) {
		t.Errorf("zero Result = %+v", got)
	}
}

// The results Apply actually returns survive the trip a forwarded
// proposal makes.
func TestResult_JSON_FromApply(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, CmdCreateKey, createKey("k1", orgA))
	stale := ref("k1", orgA, t0)
	stale.IfRevision = 99
	mustApply(t, f, CmdCreateKey, protectedKey(createKey("k2", orgA)))
	cases := []struct {
		cmd  step
		want error
	}{
		{step{CmdEnableKey, ref("nope", orgA, t0)}, ErrKeyNotFound},
		{step{CmdCreateKey, createKey("k1", orgA)}, ErrKeyExists},
		{step{CmdEnableKey, stale}, ErrRevisionMismatch},
		{step{CmdRotateKey, rotate("k1", orgA, 5, t0)}, ErrVersionConflict},
		{step{CmdScheduleDeletion, scheduleDeletion("k2", orgA, t0, t0+day)}, ErrKeyProtected},
		{step{CmdCreateKey, createKey("", orgA)}, ErrInvalidCommand},
	}
	for _, c := range cases {
		res := apply(t, f, c.cmd.typ, c.cmd.payload)
		got := resultRoundTrip(t, res)
		if !errors.Is(got.Err, c.want) || got.Err.Error() != res.Err.Error() {
			t.Errorf("command %d: Err = %v, want %v (%v)", c.cmd.typ, got.Err, c.want, res.Err)
		}
	}
	res := apply(t, f, CmdCancelDeletion, ref("k1", orgA, t0))
	var te *TransitionError
	if got := resultRoundTrip(t, res); !errors.As(got.Err, &te) || te.Op != OpCancelDeletion {
		t.Errorf("Err = %v, want TransitionError", got.Err)
	}
}
